"""Point-in-time correctness on the real data: a feature of race N may use only races before N.

The warehouse is rebuilt from data truncated after a cutoff race (results, sprints, qualifying
and standings of later races removed; the calendar kept, as it is published in advance; practice
sessions kept up to the next race, as on the eve of its qualifying). Every row of every race up
to the cutoff must be identical to the full build: if any feature looked at a later race,
truncation would change it; and the next race's practice features must be those of the full
build. A second check scrambles a race's own results, qualifying and standings: features of that
race must not move either, which catches a window that includes the current row, and a team
feature that reads the team-mate's result. Both marts are compared: the features
(`podium_features`) and the measured candidates (`podium_feature_candidates`), side by side per
(race, driver).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from models_py.features import POST_QUALIFYING, load_feature_spec
from scripts.build_warehouse import SKIP_TESTS, build
from scripts.load_data import load
from scripts.load_practice import load_practice

pytestmark = pytest.mark.slow

TRUNCATED_TABLES = (
    "results",
    "sprint_results",
    "qualifying",
    "driver_standings",
    "constructor_standings",
)

# The f1db practice data begins in 1995.
FIRST_PRACTICE_SEASON = 1995

# Mid-season in the sprint era (2025 has sprints in rounds 2 and 6), a season's last race (the
# next is another season's opener), an early-1980s mid-season race.
CUTOFFS = [(2025, 10), (2024, 24), (1982, 7)]

# Features that depend only on the entity's own history, so an upcoming-race row must equal the
# row the same driver gets once the race has happened (the entrant list may differ, so
# championship position, grid size and team composition are not compared).
HISTORY_ONLY_FEATURES = [
    "driver_podium_rate_3",
    "driver_podium_rate_5",
    "driver_podium_rate_10",
    "driver_season_podium_rate",
    "driver_experience",
    "driver_circuit_podium_rate",
    "driver_circuit_visits",
    "season_points_before_race",
    "driver_age_years",
    "regulation_era",
    "circuit_type",
    "is_home_race",
    "driver_points_per_race_5",
    "driver_points_per_race_10",
    "driver_mean_start_5",
    "driver_mean_start_10",
    "driver_mean_finish_5",
    "driver_mean_finish_10",
    "driver_teammate_start_gap_10",
    "driver_standings_position",
    "driver_standings_points_share",
    "driver_standings_gap_to_leader",
    "races_since_regulation_reset",
]


def feature_rows(catalog: str) -> str:
    """Both marts of an attached warehouse side by side: one row per (race, driver) with every
    feature and every measured candidate (the candidates carry only the keys besides)."""
    return (
        f"(select * from {catalog}.podium_features "
        f"inner join {catalog}.podium_feature_candidates using (race_id, driver_id))"
    )


def column_names(connection: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [
        column[0] for column in connection.execute(f"select * from {relation} limit 0").description
    ]


def race_after(raw_dir: Path, cutoff: tuple[int, int]) -> tuple[int, int]:
    with (raw_dir / "races.csv").open(newline="", encoding="utf-8") as handle:
        scheduled = [(int(row["year"]), int(row["round"])) for row in csv.DictReader(handle)]
    return min(race for race in scheduled if race > cutoff)


def truncated_source(raw_dir: Path, destination: Path, cutoff: tuple[int, int]) -> Path:
    destination.mkdir()
    with (raw_dir / "races.csv").open(newline="", encoding="utf-8") as handle:
        kept_races = {
            row["raceId"]
            for row in csv.DictReader(handle)
            if (int(row["year"]), int(row["round"])) <= cutoff
        }
    for path in raw_dir.glob("*.csv"):
        if path.stem not in TRUNCATED_TABLES:
            shutil.copyfile(path, destination / path.name)
            continue
        with (
            path.open(newline="", encoding="utf-8") as source,
            (destination / path.name).open("w", newline="", encoding="utf-8") as target,
        ):
            reader = csv.reader(source)
            writer = csv.writer(target, lineterminator="\n")
            header = next(reader)
            race_column = header.index("raceId")
            writer.writerow(header)
            writer.writerows(row for row in reader if row[race_column] in kept_races)
    return destination


# Practice features of podium_features and their ungated candidates of podium_feature_candidates.
PRACTICE_FEATURES = (
    "practice_sessions_before_qualifying",
    "practice_best_gap_pct",
    "practice_last_session_gap_pct",
    "practice_laps",
    "practice_best_gap_pct_ungated",
    "practice_last_session_gap_pct_ungated",
    "practice_laps_ungated",
)


def practice_until(practice_dir: Path, destination: Path, race: tuple[int, int]) -> Path:
    """The practice files without any session of a race after `race`."""
    destination.mkdir()
    for path in practice_dir.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as source:
            reader = csv.reader(source)
            header = next(reader)
            rows = list(reader)
        if "free-practice" in path.name:
            year, round_ = header.index("year"), header.index("round")
            rows = [row for row in rows if (int(row[year]), int(row[round_])) <= race]
        with (destination / path.name).open("w", newline="", encoding="utf-8") as target:
            writer = csv.writer(target, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(header)
            writer.writerows(rows)
    return destination


@pytest.mark.parametrize("cutoff", CUTOFFS, ids=[f"{y}-r{r}" for y, r in CUTOFFS])
def test_features_do_not_change_when_later_races_are_removed(
    cutoff: tuple[int, int],
    real_raw_dir: Path,
    real_practice_dir: Path,
    real_warehouse: Path,
    tmp_path: Path,
) -> None:
    source = truncated_source(real_raw_dir, tmp_path / "source", cutoff)
    raw_dir = tmp_path / "raw"
    load(str(source), raw_dir)
    # Practice as on the eve of the next race's qualifying: its sessions are out, none later.
    next_race = race_after(raw_dir, cutoff)
    practice = tmp_path / "practice"
    load_practice(str(practice_until(real_practice_dir, tmp_path / "f1db", next_race)), practice)
    truncated = tmp_path / "truncated.duckdb"
    build(
        truncated,
        raw_dir,
        extra_args=SKIP_TESTS,
        target_path=tmp_path / "target",
        practice_dir=practice,
    )

    year, round_ = cutoff
    with duckdb.connect() as connection:
        connection.execute(f"attach '{real_warehouse}' as full_build (read_only)")
        connection.execute(f"attach '{truncated}' as truncated_build (read_only)")
        full, cut = feature_rows("full_build"), feature_rows("truncated_build")
        columns = column_names(connection, full)
        assert "practice_best_gap_pct_ungated" in columns  # the candidates are compared too
        past = f"(year < {year} or (year = {year} and round <= {round_}))"
        [(full_rows,)] = connection.execute(f"select count(*) from {full} where {past}").fetchall()
        [(truncated_rows,)] = connection.execute(
            f"select count(*) from {cut} where {past}"
        ).fetchall()
        assert truncated_rows == full_rows > 0

        differing = connection.execute(
            f"""
            select * from (select * from {full} where {past})
            except
            select * from (select * from {cut} where {past})
            """
        ).fetchall()
        assert differing == [], (
            f"{len(differing)} rows differ, e.g. {dict(zip(columns, differing[0], strict=True))}"
        )

        # The race after the cutoff is now the upcoming one: its rows carry no target, and each
        # history-only feature equals what the full build computes for that driver in that race.
        [(upcoming_rows, upcoming_targets)] = connection.execute(
            "select count(*), count(podium) from truncated_build.podium_features where is_upcoming"
        ).fetchall()
        assert upcoming_rows > 0
        assert upcoming_targets == 0
        feature_list = ", ".join(HISTORY_ONLY_FEATURES)
        mismatched = connection.execute(
            f"""
            select race_id, driver_id, {feature_list}
            from truncated_build.podium_features where is_upcoming
            except
            select race_id, driver_id, {feature_list} from full_build.podium_features
            """
        ).fetchall()
        [(matched,)] = connection.execute(
            """
            select count(*) from truncated_build.podium_features as upcoming
            inner join full_build.podium_features as actual
                on upcoming.race_id = actual.race_id and upcoming.driver_id = actual.driver_id
            where upcoming.is_upcoming
            """
        ).fetchall()
        # Entrants who did not race after all have no counterpart; everyone who did must match.
        assert matched > 0
        assert len(mismatched) == upcoming_rows - matched

        # The upcoming race's practice features (and their ungated candidates) are those of the
        # full build: nothing of its qualifying or its race reaches them.
        changed = " or ".join(
            f"upcoming.{name} is distinct from actual.{name}" for name in PRACTICE_FEATURES
        )
        [(compared, with_practice, differing)] = connection.execute(
            f"""
            select count(*), count(upcoming.practice_best_gap_pct_ungated), count_if({changed})
            from {cut} as upcoming inner join {full} as actual using (race_id, driver_id)
            where upcoming.is_upcoming
            """
        ).fetchall()
        assert compared == matched
        assert (with_practice > 0) == (next_race[0] >= FIRST_PRACTICE_SEASON)
        assert differing == 0


# Per table, the first column of the race's own outcome: everything from it on is rotated by one
# row within the race (a valid but different result), keys and the entrant list stay.
SCRAMBLED_FROM = {
    "results": "grid",
    "sprint_results": "grid",
    "qualifying": "position",
    "driver_standings": "points",
    "constructor_standings": "points",
}
OUTCOME_COLUMNS = ("podium", "finish_position")


def scrambled_source(raw_dir: Path, destination: Path, race: tuple[int, int]) -> tuple[Path, str]:
    destination.mkdir()
    with (raw_dir / "races.csv").open(newline="", encoding="utf-8") as handle:
        [race_id] = [
            row["raceId"]
            for row in csv.DictReader(handle)
            if (int(row["year"]), int(row["round"])) == race
        ]
    for path in raw_dir.glob("*.csv"):
        if path.stem not in SCRAMBLED_FROM:
            shutil.copyfile(path, destination / path.name)
            continue
        with path.open(newline="", encoding="utf-8") as source:
            reader = csv.reader(source)
            header = next(reader)
            rows = list(reader)
        race_column = header.index("raceId")
        first = header.index(SCRAMBLED_FROM[path.stem])
        own = [index for index, row in enumerate(rows) if row[race_column] == race_id]
        outcomes = [rows[index][first:] for index in own]
        for index, outcome in zip(own, outcomes[1:] + outcomes[:1], strict=True):
            rows[index] = rows[index][:first] + outcome
        with (destination / path.name).open("w", newline="", encoding="utf-8") as target:
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    return destination, race_id


def test_a_race_features_do_not_move_when_its_own_results_are_scrambled(
    real_raw_dir: Path,
    real_practice_dir: Path,
    real_warehouse: Path,
    real_manifest: Path,
    tmp_path: Path,
) -> None:
    # The post-qualifying features are the race's own qualifying and sprint classification, known
    # on the eve of the race by design (`meta.moment`): the scramble moves them, nothing else.
    spec = load_feature_spec(real_manifest)
    own_weekend = {name for name, c in spec.columns.items() if c.moment == POST_QUALIFYING}
    assert own_weekend >= {"qualifying_position", "sprint_position"}
    source, race_id = scrambled_source(real_raw_dir, tmp_path / "source", (2024, 10))
    raw_dir = tmp_path / "raw"
    load(str(source), raw_dir)
    scrambled = tmp_path / "scrambled.duckdb"
    build(
        scrambled,
        raw_dir,
        extra_args=SKIP_TESTS,
        target_path=tmp_path / "target",
        practice_dir=real_practice_dir,
    )
    with duckdb.connect() as connection:
        connection.execute(f"attach '{real_warehouse}' as full_build (read_only)")
        connection.execute(f"attach '{scrambled}' as scrambled_build (read_only)")
        full, scrambled_rows = feature_rows("full_build"), feature_rows("scrambled_build")
        columns = [
            name
            for name in column_names(connection, full)
            if name not in OUTCOME_COLUMNS and name not in own_weekend
        ]
        selected = ", ".join(columns)
        # The scramble really changed the race's outcome...
        [(moved,)] = connection.execute(
            f"""
            select count(*) from full_build.podium_features as full_rows
            inner join scrambled_build.podium_features as scrambled_rows
                using (race_id, driver_id)
            where race_id = {race_id}
                and full_rows.finish_position <> scrambled_rows.finish_position
            """
        ).fetchall()
        assert moved > 0
        # ...and none of its features.
        differing = connection.execute(
            f"""
            select {selected} from {full} where race_id = {race_id}
            except
            select {selected} from {scrambled_rows} where race_id = {race_id}
            """
        ).fetchall()
        assert differing == [], dict(zip(columns, differing[0], strict=True))
        # The next race's features do see the scrambled result, so the check has teeth.
        [(next_changed,)] = connection.execute(
            f"""
            select count(*) from (
                select {selected} from {scrambled_rows} where year = 2024 and round = 11
                except
                select {selected} from {full} where year = 2024 and round = 11
            )
            """
        ).fetchall()
        assert next_changed > 0
