"""Champion/challenger on a real store: promotion only on a re-scored holdout Brier; predict."""

from __future__ import annotations

from pathlib import Path

import duckdb
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models_py import serving
from models_py.features import load_feature_spec, read_features
from tests.helpers import invoke_predict, invoke_train, sqlite_uri

pytestmark = pytest.mark.slow

MODEL = "podium-smoke"


def train(store: Path, warehouse: Path, manifest: Path, *extra: str) -> str:
    completed = invoke_train(
        warehouse,
        manifest,
        "--model-name",
        MODEL,
        "--tracking-uri",
        sqlite_uri(store),
        "--artifact-root",
        str(store / "mlartifacts"),
        *extra,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def registry(real_warehouse: Path, real_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("registry")
    raw = ["--no-calibration", "--no-normalisation"]
    outputs = [
        # Raw probabilities with class weighting: inflated, a mediocre holdout Brier.
        train(store, real_warehouse, real_manifest, *raw, "--param", "scale_pos_weight=4"),
        # Heavier class weighting inflates every probability further: a worse holdout Brier.
        train(store, real_warehouse, real_manifest, *raw, "--param", "scale_pos_weight=12"),
        # The served recipe: no class weight, calibrated, normalised per race: a better Brier.
        train(store, real_warehouse, real_manifest),
        # Holdout 2023 is inside the champion's training seasons (2021-2023): no fair comparison.
        train(
            store,
            real_warehouse,
            real_manifest,
            "--first-cv-season",
            "2021",
            "--last-cv-season",
            "2022",
            "--test-season",
            "2023",
        ),
    ]
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlruns.db'}")
    return store, outputs, MlflowClient()


def holdout_brier(client: MlflowClient, name: str, version: str) -> float:
    run_id = client.get_model_version(name, version).run_id
    return client.get_run(run_id).data.metrics["holdout_brier"]


def test_first_version_becomes_champion_worse_one_stays_challenger(registry) -> None:
    _, outputs, client = registry
    assert "promoted to champion: no champion yet" in outputs[0]
    assert "left as challenger" in outputs[1]

    second = client.get_model_version(MODEL, "2")
    assert second.tags["promoted"] == "false"
    # The champion was re-scored now, on the same rows: with unchanged data that reproduces
    # exactly the holdout Brier its own run logged.
    rescored = float(second.tags["champion_holdout_brier_rescored"])
    assert rescored == pytest.approx(holdout_brier(client, MODEL, "1"), abs=1e-6)
    assert float(second.tags["holdout_brier"]) > rescored
    for key in ("git_commit", "data_version", "features", "study_name", "decision"):
        assert key in second.tags
    assert "Challenger only" in second.description


def test_better_version_takes_the_champion_alias(registry) -> None:
    _, outputs, client = registry
    assert "promoted to champion: holdout Brier" in outputs[2]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "4"
    third = client.get_model_version(MODEL, "3")
    assert float(third.tags["champion_holdout_brier_rescored"]) == pytest.approx(
        holdout_brier(client, MODEL, "1"), abs=1e-6
    )


def test_predict_keeps_every_forecast_beside_the_earlier_ones(
    registry, real_warehouse: Path, real_manifest: Path
) -> None:
    store, _, _ = registry
    first = invoke_predict(store, real_warehouse, real_manifest, "--model-name", MODEL)
    assert first.returncode == 0, first.stderr
    assert "2025 round 19" in first.stdout and "pre-qualifying" in first.stdout
    assert "Lando Norris" in first.stdout
    # The shipped data has no qualifying or entry list for round 19: the user is told.
    assert "entrants are the previous race's driver-team pairs" in first.stdout + first.stderr
    again = invoke_predict(store, real_warehouse, real_manifest, "--model-name", MODEL)
    assert again.returncode == 0, again.stderr
    past = invoke_predict(
        store, real_warehouse, real_manifest, "--model-name", MODEL, "--race-id", "1162"
    )
    assert past.returncode == 0, past.stderr

    files = sorted((store / "predictions").rglob("*.parquet"))
    assert [file.parent.name for file in files] == ["race_1162", "race_1163", "race_1163"]
    [(rows, races, forecasts, total)] = duckdb.sql(
        "select count(*), count(distinct race_id), count(distinct forecast_id), "
        f"sum(podium_probability) from read_parquet('{store / 'predictions'}/**/*.parquet')"
    ).fetchall()
    assert (rows, races, forecasts) == (60, 2, 3)
    assert total == pytest.approx(9.0)
    stored = pd.read_parquet(files[-1])
    assert set(stored["moment"]) == {"pre_qualifying"}
    assert set(stored["model_name"]) == {MODEL} and stored["replay"].isna().all()
    assert len(stored["data_version"].iloc[0]) == 64


def test_the_champion_serves_its_refit_and_keeps_its_holdout_model(
    registry, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    _, _, client = registry
    champion = client.get_model_version_by_alias(MODEL, "champion")
    # What the alias serves has seen every race with results up to the next one.
    assert champion.tags["trained_through"] == "2022-2024 and 2025 rounds 1-18"
    holdout = pd.read_csv(
        client.download_artifacts(champion.run_id, "holdout_predictions.csv", str(tmp_path))
    )
    # The evaluated holdout model travels with the version, and serves the holdout numbers.
    model = mlflow.pyfunc.load_model(champion.tags["holdout_model_uri"])
    features = serving.model_features(model)
    rows = read_features(
        real_warehouse, load_feature_spec(real_manifest), features, where="f.year = 2024"
    ).frame
    served = rows[["race_id", "driver_id"]].assign(
        served=serving.served_probabilities(model, rows)["podium_probability"].to_numpy()
    )
    merged = served.merge(holdout, on=["race_id", "driver_id"], validate="one_to_one")
    assert len(merged) == len(holdout) > 0
    assert (merged["served"] - merged["probability"]).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-name", "no-such-model"], "no registered model 'no-such-model'"),
        (["--model-name", MODEL, "--alias", "staging"], "with alias 'staging'"),
        (["--model-name", "podium-smoke' or name like '%"], "no registered model"),
        (["--model-name", MODEL, "--race-id", "999999"], "race 999999 is not in podium_features"),
    ],
)
def test_predict_refuses_unknown_models_aliases_and_races(
    registry, real_warehouse: Path, real_manifest: Path, extra: list[str], message: str
) -> None:
    store, _, _ = registry
    completed = invoke_predict(store, real_warehouse, real_manifest, *extra)
    assert completed.returncode == 2
    assert message in completed.stderr


def test_champion_is_not_compared_on_seasons_it_trained_on(registry) -> None:
    _, outputs, client = registry
    assert "left as challenger: champion v3 was trained on 2023" in outputs[3]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    fourth = client.get_model_version(MODEL, "4")
    assert fourth.tags["promoted"] == "false"
    assert fourth.tags["champion_holdout_brier_rescored"] == "none"


def test_names_with_quotes_and_filter_syntax_neither_break_nor_widen_lookups(
    registry, real_warehouse: Path, real_manifest: Path
) -> None:
    store, _, client = registry
    tricky = f"{MODEL}' OR name LIKE '%"
    completed = invoke_train(
        real_warehouse,
        real_manifest,
        "--experiment",
        'it\'s "quoted" OR 1=1',
        "--model-name",
        tricky,
        "--tracking-uri",
        sqlite_uri(store),
    )
    assert completed.returncode == 0, completed.stderr
    # Had the champion lookup matched by pattern, it would have found podium-smoke's champion.
    assert f"registered {tricky} v1: promoted to champion: no champion yet" in (completed.stdout)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    assert client.get_experiment_by_name('it\'s "quoted" OR 1=1') is not None
