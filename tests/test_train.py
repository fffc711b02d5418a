"""A real `python train.py` on the real feature table, into a temporary MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models_py.features import load_feature_spec, read_features
from models_py.serving import served_input
from tests.helpers import invoke, sqlite_uri

pytestmark = pytest.mark.slow

EXPECTED_ARTIFACTS = {
    "cv_fold_metrics.csv",
    "cv_predictions.csv",
    "holdout_predictions.csv",
    "plots/roc_curve_cv.png",
    "plots/calibration.png",
    "plots/probability_by_class_cv.png",
}
# Only in the run of the served model.
SERVED_ARTIFACTS = {
    "recipe.json",
    "cv_brier_by_season.csv",
    "plots/brier_by_season.png",
    # served runs have the race model in them (the blend, or LightGBM beside it)
    "plots/race_model_coefficients.png",
}
CANDIDATES = (
    "baseline_rule",
    "baseline_naive",
    "baseline_logistic",
    "baseline_lgbm_default",
    "lgbm",
    "blend",
)


def all_artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= all_artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture(scope="module")
def trained(real_warehouse: Path, real_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("mlflow")
    completed = invoke(
        "train",
        real_warehouse,
        real_manifest,
        "--experiment",
        "smoke",
        "--tracking-uri",
        sqlite_uri(folder),
        "--artifact-root",
        str(folder / "mlartifacts"),
    )
    assert completed.returncode == 0, completed.stderr
    mlflow.set_tracking_uri(sqlite_uri(folder))
    client = MlflowClient(sqlite_uri(folder))
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    return completed.stdout, client, runs


def test_prints_progress_and_a_summary_table(trained) -> None:
    stdout, _, _ = trained
    assert "lgbm fold  2/2 train 2020-2022 → valid 2023" in stdout
    for model in CANDIDATES:
        assert f"\n{model} " in stdout
    assert "registered podium v1: promoted to champion: no champion yet" in stdout


def test_runs_params_tags_and_metrics(trained) -> None:
    _, client, runs = trained
    by_role = {run.data.tags.get("pitwall.role"): run for run in runs}
    assert set(CANDIDATES) <= set(by_role)
    # The default training runs no study and no research challenger.
    assert "study" not in by_role and "lgbm_ranker" not in by_role
    served = by_role["lgbm"]

    params = served.data.params
    assert (params["window"], params["test_season"]) == ("3", "2024")
    assert params["cv_valid_seasons"] == "2022,2023"
    assert "driver_podium_rate_10" in params["features"]
    assert params["model.deterministic"] == "True"
    assert params["postprocessing"].startswith("Platt calibration (slope ")
    assert params["postprocessing"].endswith("then per-race normalisation to 3")

    tags = served.data.tags
    assert len(tags["git_commit"]) >= 40
    assert len(tags["data_version"]) == 64
    assert len(tags["practice_data_version"]) == 64
    assert len(tags["features_sql_sha256"]) == 64
    # Served: the blend if it beat LightGBM alone on CV, else LightGBM's P(podium) beside the
    # race model's P(win) and P(points); either way a run with the race model in it.
    [chosen] = [
        run
        for run in runs
        if run.data.tags.get("pitwall.served") == "true"
        and run.data.tags.get("pitwall.moment") == "pre_qualifying"
    ]
    blend = by_role["blend"]
    lift = served.data.metrics["cv_brier_mean"] - blend.data.metrics["cv_brier_mean"]
    assert chosen.data.tags["pitwall.role"] == ("blend" if lift > 0 else "lgbm_served")
    # The served run has a nested run per fold; every candidate its fold metrics as steps.
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == chosen.info.run_id]
    assert sorted(child.data.params["valid_season"] for child in children) == ["2022", "2023"]
    history = client.get_metric_history(served.info.run_id, "fold_brier")
    assert sorted(point.step for point in history) == [2022, 2023]
    assert lift == pytest.approx(blend.data.metrics["cv_brier_lift_vs_lgbm"])
    assert blend.data.params["postprocessing"].startswith("P(podium) = sigmoid(")
    for outcome in ("win", "points"):
        # The race model's P(win) and P(points), and the same read off P(podium) alone.
        assert 0 < chosen.data.metrics[f"cv_{outcome}_brier_mean"] < 0.25
        assert 0 < chosen.data.metrics[f"cv_{outcome}_brier_from_podium_mean"] < 0.25
        assert f"holdout_{outcome}_brier" in chosen.data.metrics

    metrics = served.data.metrics
    for name in ("auc", "brier", "log_loss", "top3_hit_rate", "race_mass_error"):
        assert f"cv_{name}_mean" in metrics and f"cv_{name}_std" in metrics
        assert f"holdout_{name}" in metrics
    assert 0.5 < metrics["cv_auc_mean"] <= 1.0
    assert served.info.status == "FINISHED"
    # The evaluation window, and the serving refit's window when it is logged in the same run.
    dataset_inputs = client.get_run(chosen.info.run_id).inputs.dataset_inputs
    names = {found.dataset.name for found in dataset_inputs}
    assert "podium_features_2021_2023" in names
    assert all("pitwall.duckdb" in found.dataset.source for found in dataset_inputs)

    for name in CANDIDATES:
        assert "cv_brier_lift_vs_rule" in by_role[name].data.metrics
    for name in ("lgbm", "baseline_logistic"):
        beaten = by_role[name].data.metrics["cv_folds_beating_naive"]
        assert beaten == int(beaten) and 0 <= beaten <= 2
    # Normalised candidates give every race exactly three podium places' worth of probability.
    for name in ("lgbm", "baseline_naive"):
        assert by_role[name].data.metrics["cv_race_mass_error_mean"] < 1e-6
        assert by_role[name].data.metrics["holdout_race_mass_error"] < 1e-6
    assert by_role["baseline_rule"].data.metrics["cv_race_mass_error_mean"] > 0.01


def test_artifacts_the_champion_refit_and_its_holdout_model_in_one_call_each(
    trained, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    _, client, runs = trained
    for candidate in runs:
        if candidate.data.tags.get("pitwall.role", "").startswith("baseline"):
            assert all_artifacts(client, candidate.info.run_id) >= EXPECTED_ARTIFACTS
    [served] = [
        found
        for found in runs
        if found.data.tags.get("pitwall.served") == "true"
        and found.data.tags.get("pitwall.moment") == "pre_qualifying"
    ]
    assert all_artifacts(client, served.info.run_id) >= EXPECTED_ARTIFACTS | SERVED_ARTIFACTS
    holdout = pd.read_csv(
        client.download_artifacts(served.info.run_id, "holdout_predictions.csv", str(tmp_path))
    )
    # Every race of the holdout sums to three podium places, none above 1.
    sums = holdout.groupby("race_id")["probability"].sum()
    assert np.allclose(sums, 3.0, atol=1e-9) and holdout["probability"].max() < 1

    # One registered model per moment. The champion, loaded in one call, serves the refit:
    # probabilities for every race, three podium places each.
    registered = sorted(model.name for model in client.search_registered_models())
    assert registered == ["podium", "podium-post-qualifying"]
    champion = mlflow.pyfunc.load_model("models:/podium@champion")
    spec = load_feature_spec(real_manifest)
    rows = read_features(real_warehouse, spec, where="f.year = 2024 and not f.is_upcoming").frame
    features = list(champion.metadata.get_input_schema().input_names())[1:]
    served_probabilities = champion.predict(served_input(rows, features))
    sums = served_probabilities.groupby(rows["race_id"].to_numpy()).sum()
    assert np.allclose(sums["podium_probability"], 3.0, atol=1e-6)
    assert np.allclose(sums["win_probability"], 1.0, atol=1e-6)
    assert np.allclose(sums["points_probability"], 10.0, atol=1e-4)

    # The evaluated holdout model travels with the version, and serves the holdout numbers.
    version = client.get_model_version_by_alias("podium", "champion")
    assert version.tags["holdout_model_uri"] == served.data.tags["holdout_model_uri"]
    assert version.tags["holdout_train_first"] == "2021"
    holdout_model = mlflow.pyfunc.load_model(version.tags["holdout_model_uri"])
    probability = holdout_model.predict(served_input(rows, features))["podium_probability"]
    merged = rows[["race_id", "driver_id"]].assign(served=probability.to_numpy())
    merged = merged.merge(holdout, on=["race_id", "driver_id"], validate="one_to_one")
    assert len(merged) == len(holdout)
    assert np.abs(merged["served"] - merged["probability"]).max() <= 1e-5
    assert served.data.metrics["served_max_abs_diff"] <= 1e-5
    brier = float(np.mean((merged["probability"] - merged["actual"]) ** 2))
    assert brier == pytest.approx(served.data.metrics["holdout_brier"], abs=1e-12)
