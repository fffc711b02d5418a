"""A real `python train.py` on the real feature table, into a temporary MLflow store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models_py.dataset import load_feature_spec, read_features
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SEASONS = ["--window", "3", "--first-cv-season", "2022", "--last-cv-season", "2023"]
TRIALS = 3
EXPECTED_ARTIFACTS = {
    "cv_fold_metrics.csv",
    "cv_predictions.csv",
    "holdout_predictions.csv",
    "plots/roc_curve_cv.png",
    "plots/calibration.png",
    "plots/probability_by_class_cv.png",
    "plots/importance_split.png",
    "plots/importance_gain.png",
}
# Only in the run of the served model (the podium model or the challenger, whichever won).
SERVED_ARTIFACTS = {
    "feature_encoding.json",
    "postprocessing.json",
    "cv_brier_by_season.csv",
    "plots/brier_by_season.png",
}
CANDIDATES = (
    "baseline_rule",
    "baseline_naive",
    "baseline_logistic",
    "baseline_lgbm_default",
    "lgbm_ranker",
    "lgbm",
)


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
    for model in CANDIDATES:
        assert f"\n{model} " in stdout
    assert "serving lgbm" in stdout


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
    # The practice source the features were built from (f1db, loaded by the test session).
    assert len(tags["practice_data_version"]) == 64
    assert len(tags["features_sql_sha256"]) == 64

    metrics = parent.data.metrics
    for name in ("auc", "brier", "log_loss", "top3_hit_rate", "race_mass_error"):
        assert f"cv_{name}_mean" in metrics and f"cv_{name}_std" in metrics
        assert f"holdout_{name}" in metrics
    assert 0.5 < metrics["cv_auc_mean"] <= 1.0
    assert parent.info.status == "FINISHED"

    [served] = [run for run in runs if run.data.tags.get("pitwall.served") == "true"]
    [dataset_input] = client.get_run(served.info.run_id).inputs.dataset_inputs
    assert dataset_input.dataset.name == "podium_features_2021_2023"
    assert dataset_input.dataset.digest
    assert "pitwall.duckdb" in dataset_input.dataset.source

    assert params["postprocessing"].startswith("Platt calibration (slope ")
    assert params["postprocessing"].endswith("then per-race normalisation to 3")
    assert params["model.scale_pos_weight"] == "1.0"

    by_role = {run.data.tags.get("pitwall.role"): run for run in runs}
    for name in CANDIDATES:
        assert "cv_brier_lift_vs_rule" in by_role[name].data.metrics
    for name in ("lgbm", "lgbm_ranker", "baseline_logistic"):
        beaten = by_role[name].data.metrics["cv_folds_beating_naive"]
        assert beaten == int(beaten) and 0 <= beaten <= 2
    # Normalised candidates give every race exactly three podium places' worth of probability.
    for name in ("lgbm", "lgbm_ranker", "baseline_naive"):
        assert by_role[name].data.metrics["cv_race_mass_error_mean"] < 1e-6
        assert by_role[name].data.metrics["holdout_race_mass_error"] < 1e-6
    assert by_role["baseline_rule"].data.metrics["cv_race_mass_error_mean"] > 0.01


def served_run(client: MlflowClient):
    experiment = client.get_experiment_by_name("smoke")
    [served] = client.search_runs([experiment.experiment_id], "tags.`pitwall.served` = 'true'")
    return served


def test_artifacts_and_the_served_model_give_the_holdout_numbers(
    trained, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    _, client = trained
    experiment = client.get_experiment_by_name("smoke")
    for run in client.search_runs([experiment.experiment_id]):
        if run.data.tags.get("pitwall.role", "").startswith(("baseline", "lgbm")):
            assert all_artifacts(client, run.info.run_id) >= EXPECTED_ARTIFACTS - {
                "plots/importance_split.png",
                "plots/importance_gain.png",
            }
    served = served_run(client)
    assert served.data.tags["pitwall.role"] in ("lgbm", "lgbm_ranker")
    assert all_artifacts(client, served.info.run_id) >= EXPECTED_ARTIFACTS | SERVED_ARTIFACTS

    holdout = pd.read_csv(
        client.download_artifacts(served.info.run_id, "holdout_predictions.csv", str(tmp_path))
    )
    # Every race of the holdout sums to three podium places, none above 1.
    sums = holdout.groupby("race_id")["probability"].sum()
    assert np.allclose(sums, 3.0, atol=1e-9) and holdout["probability"].max() < 1
    pooled = pd.read_csv(
        client.download_artifacts(served.info.run_id, "cv_predictions.csv", str(tmp_path))
    )
    assert list(pooled.columns) == [
        "race_id",
        "driver_id",
        "year",
        "round",
        "probability",
        "actual",
    ]
    assert sorted(pooled["year"].unique()) == [2022, 2023]

    # The pyfunc model serves the very numbers the holdout metrics were computed on.
    data = read_features(real_warehouse, load_feature_spec(real_manifest))
    rows = data.past[data.past["year"] == 2024]
    pyfunc = mlflow.pyfunc.load_model(served.data.tags["model_uri"])
    served_probability = np.asarray(pyfunc.predict(rows[["race_id", *data.features]]))
    merged = rows[["race_id", "driver_id"]].assign(served=served_probability)
    merged = merged.merge(holdout, on=["race_id", "driver_id"], validate="one_to_one")
    assert len(merged) == len(holdout)
    assert np.abs(merged["served"] - merged["probability"]).max() <= 1e-9
    assert served.data.metrics["pyfunc_max_abs_diff"] <= 1e-9
    assert served.data.metrics["onnx_max_abs_diff"] <= 1e-5
    brier = float(np.mean((merged["probability"] - merged["actual"]) ** 2))
    assert brier == pytest.approx(served.data.metrics["holdout_brier"], abs=1e-12)
