"""The forecast store as the warehouse reads it: `predictions`, `latest_predictions` and
`prediction_scorecard` over hand-made forecasts of a real race, with the cut-off and the score
checked against what the test computes itself from the same rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from models_py.serving import STORE_COLUMNS, write_forecast
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

# duckdb's names for the types the store declares (`describe` reports these)
DESCRIBED_TYPES = {
    "varchar": "VARCHAR",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "integer": "INTEGER",
    "double": "DOUBLE",
}


def query(warehouse: Path, sql: str, *parameters: object) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql, list(parameters)).fetchall()


def forecast(entrants: pd.DataFrame, probabilities: list[float], at: pd.Timestamp) -> pd.DataFrame:
    """One live pre-qualifying forecast of the entrants, as `train.py predict` stores it."""
    return entrants.assign(
        forecast_id=uuid.uuid4().hex,
        predicted_at=at,
        moment="pre_qualifying",
        podium_probability=probabilities,
        # a version that served P(podium) only: the scorecard's win and points Brier stay null
        win_probability=None,
        points_probability=None,
        model_name="podium",
        model_version="7",
        model_alias="champion",
        entrant_source="qualifying",
        data_version="test",
        practice_data_version="test",
        replay=None,
        replay_id=None,
    )


def spread(count: int, favourites: list[float]) -> list[float]:
    """Probabilities summing to 3: the favourites first, the rest of the mass shared evenly."""
    rest = (3 - sum(favourites)) / (count - len(favourites))
    return favourites + [rest] * (count - len(favourites))


def run_store_views(warehouse: Path, store: Path, raw_dir: Path, practice_dir: Path) -> None:
    env = dict(
        os.environ,
        PITWALL_DUCKDB=str(warehouse),
        PITWALL_RAW_DIR=str(raw_dir),
        PITWALL_PRACTICE_DIR=str(practice_dir),
        PITWALL_PREDICTIONS_DIR=str(store),
    )
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "--no-use-colors",
            "run",
            "--select",
            "predictions",
            "latest_predictions",
            "prediction_scorecard",
            "--project-dir",
            str(REPO_ROOT / "dbt_project"),
            "--profiles-dir",
            str(REPO_ROOT),
            "--target-path",
            str(warehouse.parent / "target"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]


def test_store_views_keep_every_forecast_and_score_the_one_made_in_time(
    real_warehouse: Path, real_raw_dir: Path, real_practice_dir: Path, tmp_path: Path
) -> None:
    # dbt rewrites the views, so on a copy: the session's warehouse stays as built
    warehouse = tmp_path / "pitwall.duckdb"
    shutil.copyfile(real_warehouse, warehouse)
    store = tmp_path / "predictions"

    # The view is typed with exactly the store's columns whether or not a forecast exists yet.
    described = query(warehouse, "select column_name, column_type from (describe predictions)")
    assert described == [
        *((name, DESCRIBED_TYPES[kind]) for name, kind in STORE_COLUMNS.items()),
        ("actual_podium", "INTEGER"),
        ("actual_win", "INTEGER"),
        ("actual_points", "INTEGER"),
        ("has_result", "BOOLEAN"),
    ]

    # The last race of the latest season whose qualifying start time is known.
    [(race_id, cutoff)] = query(
        warehouse,
        "select race_id, timezone('UTC', qualifying_date + qualifying_start_time_utc) "
        "from stg_ergast__races where qualifying_start_time_utc is not null "
        "and race_id in (select race_id from podium_features where podium is not null) "
        "order by year desc, round desc limit 1",
    )
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    entrants = pd.DataFrame(
        query(
            warehouse,
            "select race_id, year, round, driver_id, constructor_id, driver_ref, "
            "constructor_ref, driver_name, constructor_name "
            "from podium_features where race_id = ? order by driver_id",
            race_id,
        ),
        columns=[
            "race_id",
            "year",
            "round",
            "driver_id",
            "constructor_id",
            "driver_ref",
            "constructor_ref",
            "driver_name",
            "constructor_name",
        ],
    )
    # A driver from a user's entry list is not in Ergast yet: a negative id, matched on the ref.
    entrants.loc[0, "driver_id"] = -1
    in_time = forecast(
        entrants, spread(len(entrants), [0.9, 0.8, 0.7]), cutoff - pd.Timedelta(hours=2)
    )
    too_late = forecast(
        entrants, spread(len(entrants), [0.2, 0.3, 0.4]), cutoff + pd.Timedelta(hours=1)
    )
    write_forecast(store, in_time)
    write_forecast(store, too_late)

    run_store_views(warehouse, store, real_raw_dir, real_practice_dir)

    stored = query(warehouse, "select forecast_id, count(*) from predictions group by 1 order by 1")
    assert sorted(stored) == sorted(
        [(in_time["forecast_id"][0], len(entrants)), (too_late["forecast_id"][0], len(entrants))]
    )
    assert query(warehouse, "select distinct forecast_id from latest_predictions") == [
        (in_time["forecast_id"][0],)
    ]

    # The actual podiums, read from the features by the real ids, not through the views.
    actual = dict(
        query(
            warehouse, "select driver_ref, podium from podium_features where race_id = ?", race_id
        )
    )
    outcomes = dict(
        query(warehouse, "select driver_ref, actual_podium from predictions where driver_id = -1")
    )
    assert outcomes == {entrants["driver_ref"][0]: actual[entrants["driver_ref"][0]]}

    expected_brier = (
        (in_time["podium_probability"] - in_time["driver_ref"].map(actual)) ** 2
    ).mean()
    [(brier, entrant_count, mass, races_to_date)] = query(
        warehouse,
        "select brier, entrants, probability_mass, races_to_date from prediction_scorecard",
    )
    assert entrant_count == len(entrants)
    assert brier == pytest.approx(expected_brier, abs=1e-6)
    assert mass == pytest.approx(3.0, abs=1e-6)
    assert races_to_date == 1
