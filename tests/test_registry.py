"""Champion/challenger on a real store: promotion only on a re-scored holdout Brier; predict."""

from __future__ import annotations

from pathlib import Path

import duckdb
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models_py.registry import Decision, decide
from scripts.build_warehouse import build
from tests.helpers import run_predict, run_train, sqlite_uri

pytestmark = pytest.mark.slow

MODEL = "podium-smoke"


class FakeVersion:
    version = "4"


@pytest.mark.parametrize(
    ("champion", "champion_brier", "promoted"),
    [
        (None, None, True),
        (FakeVersion(), 0.09, True),
        (FakeVersion(), 0.07, False),
        (FakeVersion(), None, False),
    ],
)
def test_decide(champion, champion_brier, promoted: bool) -> None:
    decision = decide(0.08, champion, champion_brier)
    assert isinstance(decision, Decision)
    assert decision.promoted is promoted


def train(store: Path, warehouse: Path, manifest: Path, *extra: str) -> str:
    completed = run_train(
        warehouse,
        manifest,
        "--trials",
        "0",
        # The podium model only: these runs compare its versions, not the challenger.
        "--no-challenger",
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
        train(store, real_warehouse, real_manifest, *raw, "--scale-pos-weight", "4"),
        # Heavier class weighting inflates every probability further: a worse holdout Brier.
        train(store, real_warehouse, real_manifest, *raw, "--scale-pos-weight", "12"),
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
    for key in ("git_commit", "data_version", "features", "study_name", "decision", "onnx_version"):
        assert key in second.tags
    assert "Challenger only" in second.description


def test_better_version_takes_the_champion_alias_on_both_twins(registry) -> None:
    _, outputs, client = registry
    assert "promoted to champion: holdout Brier" in outputs[2]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    onnx_champion = client.get_model_version_by_alias(f"{MODEL}-onnx", "champion")
    assert str(onnx_champion.version) == "3"
    assert onnx_champion.tags["lgbm_version"] == "3"
    third = client.get_model_version(MODEL, "3")
    assert float(third.tags["champion_holdout_brier_rescored"]) == pytest.approx(
        holdout_brier(client, MODEL, "1"), abs=1e-6
    )


def test_predict_scores_the_upcoming_race_and_replaces_on_rescoring(
    registry, real_warehouse: Path, real_manifest: Path, real_raw_dir: Path, tmp_path: Path
) -> None:
    store, _, _ = registry
    first = run_predict(store, real_warehouse, real_manifest, "--model-name", MODEL)
    assert first.returncode == 0, first.stderr
    assert "2025 round 19" in first.stdout
    assert "Lando Norris" in first.stdout
    again = run_predict(store, real_warehouse, real_manifest, "--model-name", MODEL)
    assert again.returncode == 0, again.stderr
    past = run_predict(
        store, real_warehouse, real_manifest, "--model-name", MODEL, "--race-id", "1162"
    )
    assert past.returncode == 0, past.stderr

    files = sorted((store / "predictions").rglob("*.parquet"))
    assert [file.name for file in files] == ["race_1162.parquet", "race_1163.parquet"]
    [(rows, races, total)] = duckdb.sql(
        f"select count(*), count(distinct race_id), sum(podium_probability) "
        f"from read_parquet('{store / 'predictions'}/*/*/*.parquet')"
    ).fetchall()
    assert (rows, races) == (40, 2)
    assert 0 < total < 40

    # dbt exposes the store beside the features, with the actual result where it is known.
    warehouse = tmp_path / "with_predictions.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PITWALL_PREDICTIONS_DIR", str(store / "predictions"))
        build(warehouse, real_raw_dir, target_path=tmp_path / "target")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        [(view_rows, known)] = connection.execute(
            "select count(*), count(actual_podium) from predictions"
        ).fetchall()
    assert (view_rows, known) == (40, 20)


def test_predict_serves_the_holdout_probabilities_the_champion_was_scored_on(
    registry, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    store, _, client = registry
    champion = client.get_model_version_by_alias(MODEL, "champion")
    holdout = pd.read_csv(
        client.download_artifacts(champion.run_id, "holdout_predictions.csv", str(tmp_path))
    )
    race_id = int(holdout["race_id"].iloc[0])
    completed = run_predict(
        store,
        real_warehouse,
        real_manifest,
        "--model-name",
        MODEL,
        "--race-id",
        str(race_id),
        "--store",
        str(tmp_path / "predictions"),
    )
    assert completed.returncode == 0, completed.stderr
    [stored] = (tmp_path / "predictions").rglob(f"race_{race_id}.parquet")
    served = pd.read_parquet(stored).merge(
        holdout, on=["race_id", "driver_id"], validate="one_to_one"
    )
    assert len(served) == (holdout["race_id"] == race_id).sum() > 0
    # ONNX computes in float32; the post-processing is the same JSON the pyfunc applies.
    assert (served["podium_probability"] - served["probability"]).abs().max() < 1e-5
    assert served["podium_probability"].sum() == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-name", "no-such-model"], "no registered model 'no-such-model-onnx'"),
        (["--model-name", MODEL, "--alias", "staging"], "with alias 'staging'"),
        (["--model-name", "podium-smoke' or name like '%"], "no registered model"),
        (["--model-name", MODEL, "--race-id", "999999"], "race 999999 is not in podium_features"),
    ],
)
def test_predict_refuses_unknown_models_aliases_and_races(
    registry, real_warehouse: Path, real_manifest: Path, extra: list[str], message: str
) -> None:
    store, _, _ = registry
    completed = run_predict(store, real_warehouse, real_manifest, *extra)
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
    completed = run_train(
        real_warehouse,
        real_manifest,
        "--trials",
        "0",
        "--experiment",
        'it\'s "quoted" OR 1=1',
        "--model-name",
        tricky,
        "--tracking-uri",
        sqlite_uri(store),
    )
    assert completed.returncode == 0, completed.stderr
    # Had the champion lookup matched by pattern, it would have found podium-smoke's champion.
    assert f"registered {tricky} v1 (ONNX v1): promoted to champion: no champion yet" in (
        completed.stdout
    )
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    assert client.get_experiment_by_name('it\'s "quoted" OR 1=1') is not None
