"""Team lineage on the real data: a renamed or sold team carries on its predecessor's history.

The expected values are computed here from the raw Ergast CSVs, apart from the dbt models: a
team's last races by (year, round), podium cars over cars and points per car on the modern scale.
The `_without_lineage` twins in `podium_feature_candidates` keep the values rolled by
constructor alone, which the ablation measures against the lineage.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

# The modern points scale (seed modern_points_scale), written out again so the test does not
# read what it checks.
MODERN_POINTS = "[25, 18, 15, 12, 10, 8, 6, 4, 2, 1]"

ROLLED_TEAM_FEATURES = (
    "constructor_podium_rate_3",
    "constructor_podium_rate_5",
    "constructor_podium_rate_10",
    "constructor_mechanical_dnf_rate_5",
    "constructor_points_per_car_3",
    "constructor_points_per_car_5",
    "constructor_points_per_car_10",
    "constructor_mean_start_3",
    "constructor_mean_start_5",
    "constructor_mean_start_10",
    "constructor_mean_finish_3",
    "constructor_mean_finish_5",
    "constructor_mean_finish_10",
    "constructor_qualifying_gap_pct_3",
    "constructor_era_points_per_car",
)


def query(warehouse: Path, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql, parameters or []).fetchall()


def raw(raw_dir: Path, table: str) -> str:
    return (
        f"read_csv('{raw_dir / f'{table}.csv'}', header=true, nullstr='\\N', all_varchar=true, "
        "quote='\"', escape='\"')"
    )


def last_races_from_raw(raw_dir: Path, team: str, year: int, round_: int) -> tuple[float, float]:
    """The team's podium rate and points per car over its last 10 races before (year, round)."""
    sql = f"""
        with team_cars as (
            select
                cast(races.year as integer) as year,
                cast(races.round as integer) as round,
                results.driverId as driver_id,
                cast(results.positionOrder as integer) <= 3 as on_podium,
                coalesce({MODERN_POINTS}[cast(results.position as integer)], 0) as points
            from {raw(raw_dir, "results")} as results
            join {raw(raw_dir, "races")} as races on results.raceId = races.raceId
            join {raw(raw_dir, "constructors")} as constructors
                on results.constructorId = constructors.constructorId
            where constructors.constructorRef = ?
        ),
        team_races as (
            select
                year,
                round,
                count(distinct driver_id) as cars,
                count(distinct driver_id) filter (where on_podium) as podium_cars,
                sum(points) as points
            from team_cars
            where year < ? or (year = ? and round < ?)
            group by year, round
            order by year desc, round desc
            limit 10
        )
        select sum(podium_cars) / sum(cars), sum(points) / sum(cars) from team_races
    """
    [(podium_rate, points_per_car)] = duckdb.execute(sql, [team, year, year, round_]).fetchall()
    return podium_rate, points_per_car


def first_race_features(warehouse: Path, team: str, year: int, round_: int) -> list[tuple]:
    return query(
        warehouse,
        "select distinct features.constructor_podium_rate_10, "
        "features.constructor_points_per_car_10, "
        "candidates.constructor_podium_rate_10_without_lineage, "
        "candidates.constructor_points_per_car_10_without_lineage "
        "from podium_features as features "
        "join podium_feature_candidates as candidates using (race_id, driver_id) "
        "where features.constructor_ref = ? and features.year = ? and features.round = ?",
        [team, year, round_],
    )


@pytest.mark.parametrize(
    ("team", "predecessor", "year", "round_"),
    [
        # a renaming: Toro Rosso's last ten races of 2019
        ("alphatauri", "toro_rosso", 2020, 1),
        # an Ergast reference reused sixty years on: Racing Point's 2020, not Aston Martin's 1960
        ("aston_martin", "racing_point", 2021, 1),
        # a reappearance: Sauber's own reference again, after Alfa Romeo's 2023
        ("sauber", "alfa", 2024, 1),
    ],
)
def test_a_renamed_team_first_race_reads_its_predecessors_last_races(
    real_warehouse: Path, real_raw_dir: Path, team: str, predecessor: str, year: int, round_: int
) -> None:
    podium_rate, points_per_car = last_races_from_raw(real_raw_dir, predecessor, year, round_)
    own_podium_rate, own_points_per_car = last_races_from_raw(real_raw_dir, team, year, round_)

    # One row: both cars read the same team history.
    [(rate_10, points_10, rate_10_without, points_10_without)] = first_race_features(
        real_warehouse, team, year, round_
    )
    assert rate_10 == pytest.approx(podium_rate, abs=1e-12)
    assert points_10 == pytest.approx(points_per_car, abs=1e-12)
    # Without the lineage the team reads its own earlier races under the reference, if any.
    if own_podium_rate is None:
        assert rate_10_without is None and points_10_without is None
    else:
        assert rate_10_without == pytest.approx(own_podium_rate, abs=1e-12)
        assert points_10_without == pytest.approx(own_points_per_car, abs=1e-12)
        assert (rate_10_without, points_10_without) != (rate_10, points_10)


def test_alphatauri_without_lineage_starts_with_no_history(real_warehouse: Path) -> None:
    [(rate_10, _, rate_10_without, points_10_without)] = first_race_features(
        real_warehouse, "alphatauri", 2020, 1
    )
    assert rate_10 is not None
    assert rate_10_without is None and points_10_without is None


def test_a_new_team_with_no_predecessor_has_no_team_history(real_warehouse: Path) -> None:
    # Haas's first race (2016 round 1): a new team, in no lineage.
    [(rate_10, points_10, rate_10_without, points_10_without)] = first_race_features(
        real_warehouse, "haas", 2016, 1
    )
    assert (rate_10, points_10, rate_10_without, points_10_without) == (None, None, None, None)


def test_lineages_resolve_to_their_founders(real_warehouse: Path) -> None:
    lineages = {
        team: (founder, from_season)
        for team, founder, from_season in query(
            real_warehouse,
            "select constructor_ref, lineage_ref, lineage_from_season from int_team_lineage",
        )
    }
    assert lineages["rb"] == ("minardi", 2024)
    assert lineages["alphatauri"] == ("minardi", 2020)
    assert lineages["aston_martin"] == ("jordan", 2021)
    assert lineages["alpine"] == ("toleman", 2021)
    assert lineages["mercedes"] == ("tyrrell", 2010)
    assert lineages["red_bull"] == ("stewart", 2005)
    assert lineages["manor"] == ("virgin", 2015)
    # A reappearing founder counts every race; a reused reference joins from its first handover.
    assert lineages["sauber"] == ("sauber", None)
    assert lineages["alfa"] == ("sauber", 2019)
    assert lineages["renault"] == ("toleman", 2002)
    assert lineages["ferrari"] == ("ferrari", None)

    # Renault's 1977-1985 works team raced Toleman, the Enstone lineage's founder: in those races
    # it keeps a history of its own, and joins Toleman's lineage from 2002.
    keys = query(
        real_warehouse,
        "select distinct lineages.constructor_ref, team_races.year, keys.constructor_ref "
        "from int_constructor_race_results as team_races "
        "join int_team_lineage as lineages on team_races.constructor_id = lineages.constructor_id "
        "join int_constructors as keys on team_races.lineage_id = keys.constructor_id "
        "where lineages.constructor_ref in ('renault', 'toleman') "
        "and team_races.year in (1985, 2002)",
    )
    assert sorted(keys) == [
        ("renault", 1985, "renault"),
        ("renault", 2002, "toleman"),
        ("toleman", 1985, "toleman"),
    ]


def test_teams_in_no_lineage_keep_their_values(real_warehouse: Path) -> None:
    """The twins differ from the features only where a lineage joins teams: for a team that is
    a lineage of its own (Ferrari, Haas), every rolled team feature equals its twin."""
    differences = query(
        real_warehouse,
        "with lone_lineages as ("
        "    select lineage_id from int_team_lineage group by lineage_id having count(*) = 1"
        ") "
        "select "
        + ", ".join(
            f"count(*) filter (where features.{name} is distinct from "
            f"candidates.{name}_without_lineage)"
            for name in ROLLED_TEAM_FEATURES
        )
        + ", count(*) "
        "from podium_features as features "
        "join podium_feature_candidates as candidates using (race_id, driver_id) "
        "join int_team_lineage as lineages on features.constructor_id = lineages.constructor_id "
        "where lineages.lineage_id in (select lineage_id from lone_lineages)",
    )[0]
    *changed, rows = differences
    assert rows > 10_000
    assert dict(zip(ROLLED_TEAM_FEATURES, changed, strict=True)) == dict.fromkeys(
        ROLLED_TEAM_FEATURES, 0
    )

    # And where a lineage does join teams, every rolled feature moves somewhere.
    moved = query(
        real_warehouse,
        "select "
        + ", ".join(
            f"count(*) filter (where features.{name} is distinct from "
            f"candidates.{name}_without_lineage)"
            for name in ROLLED_TEAM_FEATURES
        )
        + " from podium_features as features "
        "join podium_feature_candidates as candidates using (race_id, driver_id)",
    )[0]
    assert all(count > 0 for count in moved)
