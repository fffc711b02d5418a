"""A live season's next race, built from the real data cut after 2025 round 17.

Two weekends of the same race (round 18), each a full load and `dbt build` of a hand-made folder:
- Thursday: no qualifying yet; the user's entry list names the real field with one team renamed,
  plus a new team with two rookies (a 22-car grid).
- Saturday evening: qualifying is published (and the entry list is still there).
Then the weekend loop a user runs: train, predict before qualifying on Thursday and both moments
on Saturday (every forecast kept), refit once the race has results, and read the scorecard.

The strongest check is point in time: the upcoming rows must carry exactly the features the full
data gives the same race once it has run, because every feature uses only earlier races.
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from models_py.features import POST_QUALIFYING, PRE_QUALIFYING, load_feature_spec
from scripts.build_warehouse import build
from scripts.load_data import load
from scripts.refresh import Snapshot, changes, refresh
from tests.conftest import UNIT_TESTS_ASIDE, real_data_source
from tests.helpers import invoke, sqlite_uri
from tests.season_data import SeasonData

pytestmark = pytest.mark.slow

LAST_RUN = (2025, 17)
RENAMED_REF, NEW_NAME = "sauber", "Audi F1 Team"
ROOKIES = (("rookie_one", "Rita Rookie"), ("rookie_two", "Rob Rookie"))
NEW_TEAM = ("newteam", "New Team Racing")
# Within-race ranks and gaps, the grid size and the championship position (ranked among the
# race's entrants) depend on who else enters: a 22-car field changes them on purpose, so the
# Thursday comparison leaves them out.
FIELD_DEPENDENT = ("_race_rank", "_gap_to_third", "grid_size", "driver_championship_position")


def real_folder() -> Path:
    source = Path(real_data_source())
    if not source.is_dir():
        pytest.skip("the live-season scenarios need the real data as a folder")
    return source


def write_entry_list(folder: Path, data: SeasonData, race_id: int) -> list[dict[str, str]]:
    """The real field of `race_id` (from its qualifying) plus a new team with two rookies."""
    drivers = {row["driverId"]: row["driverRef"] for row in data.rows["drivers"]}
    teams = {row["constructorId"]: row["constructorRef"] for row in data.rows["constructors"]}
    field = [
        {
            "year": "2025",
            "round": "18",
            "driver_ref": drivers[row["driverId"]],
            "constructor_ref": teams[row["constructorId"]],
            "driver_name": "",
            "constructor_name": "",
        }
        for row in data.source["qualifying"]
        if row["raceId"] == str(race_id)
    ]
    field += [
        {
            "year": "2025",
            "round": "18",
            "driver_ref": ref,
            "constructor_ref": NEW_TEAM[0],
            "driver_name": name,
            "constructor_name": NEW_TEAM[1],
        }
        for ref, name in ROOKIES
    ]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "2025.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(field[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(field)
    return field


def build_weekend(folder: Path, data: SeasonData, entries: Path, practice_dir: Path) -> Path:
    raw = folder / "raw"
    load(str(data.write(folder / "source")), raw, log=lambda _line: None)
    warehouse = folder / "pitwall.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PITWALL_ENTRIES_DIR", str(entries))
        # Every data test (a 22-car field, new ids); the unit tests do not depend on the data.
        build(
            warehouse,
            raw,
            UNIT_TESTS_ASIDE,
            target_path=folder / "target",
            practice_dir=practice_dir,
        )
    return warehouse


@pytest.fixture(scope="module")
def weekend(tmp_path_factory: pytest.TempPathFactory, real_practice_dir: Path) -> dict:
    data = SeasonData.cut_after(real_folder(), *LAST_RUN)
    next_race = data.next_race()
    race_id = int(next_race["raceId"])
    assert (int(next_race["year"]), int(next_race["round"])) == (2025, 18)
    data.rename_constructor(RENAMED_REF, NEW_NAME)
    entries = tmp_path_factory.mktemp("entries")
    entry_list = write_entry_list(entries, data, race_id)
    thursday = build_weekend(tmp_path_factory.mktemp("thursday"), data, entries, real_practice_dir)
    # Saturday: `make refresh` once qualifying is out, on a copy of Thursday's warehouse (without
    # dbt tests: Thursday's build ran them on the same data but qualifying).
    data.publish("qualifying", race_id)
    folder = tmp_path_factory.mktemp("saturday")
    shutil.copytree(thursday.parent / "raw", folder / "raw")
    shutil.copyfile(thursday, folder / "pitwall.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PITWALL_ENTRIES_DIR", str(entries))
        refreshed = refresh(
            str(data.write(folder / "source")),
            None,
            folder / "raw",
            real_practice_dir,
            folder / "pitwall.duckdb",
            skip_tests=True,
            target_path=folder / "target",
        )
    return {
        "race_id": race_id,
        "entry_list": entry_list,
        "thursday": thursday,
        "saturday": folder / "pitwall.duckdb",
        "saturday_refresh": refreshed,
    }


def upcoming(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(
            "select * from podium_features where is_upcoming order by driver_ref"
        ).df()


def same_race_after_it_ran(real_warehouse: Path, race_id: int) -> pd.DataFrame:
    with duckdb.connect(str(real_warehouse), read_only=True) as connection:
        return connection.execute(
            "select * from podium_features where race_id = ? order by driver_ref", [race_id]
        ).df()


def assert_same_features(
    upcoming_rows: pd.DataFrame, past_rows: pd.DataFrame, features: list[str]
) -> None:
    merged = upcoming_rows.merge(past_rows, on="driver_id", suffixes=("_upcoming", "_past"))
    assert len(merged) == len(past_rows)
    differences = []
    for feature in features:
        for _, row in merged.iterrows():
            a, b = row[f"{feature}_upcoming"], row[f"{feature}_past"]
            if pd.isna(a) and pd.isna(b):
                continue
            if pd.isna(a) or pd.isna(b) or not math.isclose(float(a), float(b), abs_tol=1e-9):
                differences.append((feature, row["driver_ref_upcoming"], a, b))
    assert not differences, differences[:10]


def test_thursday_field_comes_from_the_entry_list_with_new_team_and_rookies(weekend):
    rows = upcoming(weekend["thursday"])
    assert len(rows) == len(weekend["entry_list"]) == 22
    assert set(rows["race_id"]) == {weekend["race_id"]}
    assert set(rows["entrant_source"]) == {"entry_list"}
    assert set(rows["driver_ref"]) == {entry["driver_ref"] for entry in weekend["entry_list"]}
    rookies = rows[rows["driver_ref"].isin([ref for ref, _ in ROOKIES])]
    assert sorted(rookies["driver_name"]) == sorted(name for _, name in ROOKIES)
    assert set(rookies["constructor_name"]) == {NEW_TEAM[1]}
    assert (rookies["driver_id"] < 0).all() and (rookies["constructor_id"] < 0).all()
    # the documented "no history" convention: counts 0, rates and standings null
    assert (rookies["driver_experience"] == 0).all()
    assert (rookies["driver_circuit_visits"] == 0).all()
    for column in ("driver_podium_rate_10", "constructor_podium_rate_5", "qualifying_position"):
        assert rookies[column].isna().all(), column


def test_thursday_features_of_known_drivers_are_those_the_race_gets_once_run(
    weekend, real_warehouse: Path, real_manifest: Path
):
    spec = load_feature_spec(real_manifest)
    features = [
        name
        for name in spec.features(PRE_QUALIFYING)
        if not name.endswith(FIELD_DEPENDENT) and not spec.columns[name].categorical
    ]
    rows = upcoming(weekend["thursday"])
    known = rows[rows["driver_id"] > 0]
    assert_same_features(
        known, same_race_after_it_ran(real_warehouse, weekend["race_id"]), features
    )


def test_renamed_team_keeps_its_history_under_the_new_name(weekend, real_warehouse: Path):
    rows = upcoming(weekend["thursday"])
    renamed = rows[rows["constructor_ref"] == RENAMED_REF]
    assert len(renamed) == 2 and set(renamed["constructor_name"]) == {NEW_NAME}
    past = same_race_after_it_ran(real_warehouse, weekend["race_id"])
    before = past[past["constructor_ref"] == RENAMED_REF]
    assert sorted(renamed["constructor_podium_rate_10"]) == sorted(
        before["constructor_podium_rate_10"]
    )


def test_refresh_says_what_changed_and_where_the_field_comes_from(weekend, real_warehouse: Path):
    # What Thursday's refresh tells a user who last built the week before (here: the full data).
    thursday = changes(Snapshot.of(real_warehouse), Snapshot.of(weekend["thursday"]))
    assert "new races with results: none" in thursday
    assert f"new teams (1): {NEW_TEAM[1]} ({NEW_TEAM[0]})" in thursday
    rookies = ", ".join(f"{name} ({ref})" for ref, name in ROOKIES)
    assert f"new drivers (2): {rookies}" in thursday
    [next_race] = [line for line in thursday if line.startswith("next race: ")]
    assert next_race.startswith("next race: 2025 R18 ")
    assert next_race.endswith("22 entrants from your entry list (entries/2025.csv)")
    # Saturday's real `make refresh` (refresh()), after Thursday's build.
    saturday = weekend["saturday_refresh"]
    assert saturday[0].startswith(f"warehouse {weekend['saturday']} refreshed in ")
    assert "new races with results: none" in saturday and "new teams: none" in saturday
    assert saturday[-1].endswith("20 entrants from its qualifying classification")
    assert not any(line.startswith(("to curate", "standings:")) for line in saturday)


def test_saturday_field_and_every_feature_come_from_the_qualifying_classification(
    weekend, real_warehouse: Path, real_manifest: Path
):
    rows = upcoming(weekend["saturday"])
    assert set(rows["entrant_source"]) == {"qualifying"}
    past = same_race_after_it_ran(real_warehouse, weekend["race_id"])
    assert sorted(rows["driver_id"]) == sorted(past["driver_id"])
    spec = load_feature_spec(real_manifest)
    features = [n for n in spec.features(POST_QUALIFYING) if not spec.columns[n].categorical]
    assert set(spec.features(POST_QUALIFYING)) - set(spec.features(PRE_QUALIFYING)) >= {
        "qualifying_position",
        "qualifying_gap_to_pole_pct",
    }
    assert rows["qualifying_position"].notna().all()
    assert_same_features(rows, past, features)


def stored(store: Path) -> pd.DataFrame:
    files = sorted(str(path) for path in store.glob("*/race_*/*.parquet"))
    with duckdb.connect() as connection:
        return connection.execute(
            "select * from read_parquet(?, union_by_name = true)", [files]
        ).df()


def test_the_weekend_loop_keeps_every_forecast_and_refits_after_the_race(
    weekend, real_warehouse: Path, real_manifest: Path, tmp_path: Path
):
    tracking = ["--tracking-uri", sqlite_uri(tmp_path), "--artifact-root", str(tmp_path / "art")]
    store = ["--store", str(tmp_path / "predictions")]
    thursday_manifest = weekend["thursday"].parent / "target" / "manifest.json"
    saturday_manifest = weekend["saturday"].parent / "target" / "manifest.json"

    trained = invoke("train", weekend["thursday"], thursday_manifest, "--no-baselines", *tracking)
    assert trained.returncode == 0, trained.stderr

    thursday = invoke("predict", weekend["thursday"], thursday_manifest, *tracking, *store)
    assert thursday.returncode == 0, thursday.stderr
    too_early = invoke(
        "predict",
        weekend["thursday"],
        thursday_manifest,
        "--moment",
        "post-qualifying",
        *tracking,
        *store,
    )
    assert too_early.returncode == 2 and "no qualifying classification" in too_early.stderr
    for moment in ("pre-qualifying", "post-qualifying"):
        saturday = invoke(
            "predict",
            weekend["saturday"],
            saturday_manifest,
            "--moment",
            moment,
            *tracking,
            *store,
        )
        assert saturday.returncode == 0, saturday.stderr

    forecasts = stored(tmp_path / "predictions")
    per_forecast = forecasts.groupby("forecast_id").agg(
        moment=("moment", "first"),
        source=("entrant_source", "first"),
        rows=("driver_id", "size"),
        mass=("podium_probability", "sum"),
    )
    summary = per_forecast[["moment", "source", "rows"]].itertuples(index=False, name=None)
    assert sorted(summary) == [
        ("post_qualifying", "qualifying", 20),
        ("pre_qualifying", "entry_list", 22),
        ("pre_qualifying", "qualifying", 20),
    ]
    assert per_forecast["mass"].sub(3).abs().max() < 1e-6
    assert set(forecasts["race_id"]) == {weekend["race_id"]}

    # After the race: the full data has its results; a refit learns from it.
    refit = invoke("refit", real_warehouse, real_manifest, *tracking)
    assert refit.returncode == 0, refit.stderr
    assert "2025 rounds 1-18" in refit.stdout
