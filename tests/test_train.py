"""A real `python train.py` on the real feature table, into a temporary MLflow store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from models_py.dataset import load_feature_spec, read_features
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SEASONS = ["--window", "3", "--first-cv-season", "2022", "--last-cv-season", "2023"]
TRIALS = 3
EXPECTED_ARTIFACTS = {
    "cv_fold_metrics.csv",
    "holdout_predictions.csv",
    "feature_encoding.json",
    "plots/roc_curve_cv.png",
    "plots/calibration.png",
    "plots/probability_by_class_cv.png",
    "plots/importance_split.png",
    "plots/importance_gain.png",
}


def all_artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= all_artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture(scope="module")
def trained(real_warehouse: Path, real_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{folder / 'mlruns.db'}"
    completed = subprocess.run(
        [
            sys.executable,
            "train.py",
            *SEASONS,
            "--trials",
            str(TRIALS),
            "--test-season",
            "2024",
            "--experiment",
            "smoke",
            "--tracking-uri",
            tracking_uri,
            "--artifact-root",
            str(folder / "mlartifacts"),
            "--warehouse",
            str(real_warehouse),
            "--dbt-manifest",
            str(real_manifest),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    mlflow.set_tracking_uri(tracking_uri)
    return completed.stdout, MlflowClient(tracking_uri)


def test_study_run_has_one_nested_run_per_trial_and_its_plots(trained) -> None:
    _, client = trained
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    [study] = [run for run in runs if run.data.tags.get("pitwall.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study.info.run_id]
    assert sorted(run.data.tags["optuna.trial_number"] for run in trials) == ["0", "1", "2"]
    assert all("mean_brier" in run.data.metrics for run in trials)
    assert study.data.metrics["best_mean_brier"] == min(
        run.data.metrics["mean_brier"] for run in trials
    )
    plots = all_artifacts(client, study.info.run_id)
    assert {"study/study_optimization_history.png", "study/study_slice.png"} <= plots


def test_prints_progress_and_a_summary_table(trained) -> None:
    stdout, _ = trained
    assert "fold  2/2 train 2020-2022 → valid 2023" in stdout
    for model in ("baseline_rule", "baseline_logistic", "baseline_lgbm_default", "lgbm"):
        assert f"\n{model} " in stdout


def test_run_tree_params_tags_and_metrics(trained) -> None:
    _, client = trained
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get("pitwall.role") == "lgbm"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(child.data.params["valid_season"] for child in children) == ["2022", "2023"]
    assert all("brier" in child.data.metrics for child in children)

    params = parent.data.params
    assert params["window"] == "3"
    assert params["test_season"] == "2024"
    assert params["cv_valid_seasons"] == "2022,2023"
    assert "driver_podium_rate_10" in params["features"]
    assert params["model.deterministic"] == "True"
    assert "model.num_leaves" in params

    tags = parent.data.tags
    assert len(tags["git_commit"]) >= 40
    assert len(tags["data_version"]) == 64
    assert len(tags["features_sql_sha256"]) == 64

    metrics = parent.data.metrics
    for name in ("auc", "brier", "log_loss", "top3_hit_rate", "race_mass_error"):
        assert f"cv_{name}_mean" in metrics and f"cv_{name}_std" in metrics
        assert f"holdout_{name}" in metrics
    assert 0.5 < metrics["cv_auc_mean"] <= 1.0
    assert parent.info.status == "FINISHED"

    [dataset_input] = parent.inputs.dataset_inputs
    assert dataset_input.dataset.name == "podium_features_2021_2023"
    assert dataset_input.dataset.digest
    assert "pitwall.duckdb" in dataset_input.dataset.source

    baselines = {run.data.tags.get("pitwall.role"): run for run in runs}
    for name in ("baseline_rule", "baseline_logistic", "baseline_lgbm_default"):
        assert "cv_brier_lift_vs_rule" in baselines[name].data.metrics
    assert "cv_brier_lift_vs_rule" in metrics


def test_artifacts_and_the_model_reload(trained, real_warehouse: Path, real_manifest: Path) -> None:
    _, client = trained
    experiment = client.get_experiment_by_name("smoke")
    [parent] = client.search_runs([experiment.experiment_id], "tags.`pitwall.role` = 'lgbm'")
    assert all_artifacts(client, parent.info.run_id) >= EXPECTED_ARTIFACTS

    model_uri = parent.data.tags["model_uri"]
    data = read_features(real_warehouse, load_feature_spec(real_manifest))
    holdout = data.frame.loc[data.frame["year"] == 2024, data.features]
    booster = mlflow.lightgbm.load_model(model_uri)
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    difference = np.abs(np.asarray(pyfunc.predict(holdout)) - booster.predict(holdout))
    assert difference.max() <= 1e-9
    assert parent.data.metrics["pyfunc_max_abs_diff"] <= 1e-9
