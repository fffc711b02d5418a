"""The feature warehouse built on the real data: shape, target, lineage and refresh safety."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from scripts.build_warehouse import SKIP_TESTS, build
from scripts.refresh import main as refresh_main
from tests.conftest import REPO_ROOT, read_csv_rows

pytestmark = pytest.mark.slow


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_row_per_past_entry_and_no_duplicates(real_warehouse: Path, real_raw_dir: Path) -> None:
    results = read_csv_rows(real_raw_dir / "results.csv")
    entries = {(row["raceId"], row["driverId"]) for row in results}
    # Shared drives (1950s) put one driver in several cars of a race: one entry each.
    assert len(results) > len(entries)

    [(past_rows, distinct_pairs)] = query(
        real_warehouse,
        "select count(*), count(distinct (race_id, driver_id)) from podium_features "
        "where not is_upcoming",
    )
    assert past_rows == len(entries)
    assert distinct_pairs == past_rows

    # The measured candidates have exactly the feature table's rows, key for key.
    [(unmatched, candidate_rows, feature_rows)] = query(
        real_warehouse,
        "select count(*) filter (where features.race_id is null or candidates.race_id is null), "
        "count(candidates.race_id), count(features.race_id) "
        "from podium_features as features "
        "full outer join podium_feature_candidates as candidates "
        "using (race_id, driver_id)",
    )
    assert unmatched == 0
    assert candidate_rows == feature_rows


def test_podium_target_matches_the_raw_results(real_warehouse: Path, real_raw_dir: Path) -> None:
    results = read_csv_rows(real_raw_dir / "results.csv")
    podium_drivers: dict[int, set[int]] = defaultdict(set)
    for row in results:
        if int(row["positionOrder"]) <= 3:
            podium_drivers[int(row["raceId"])].add(int(row["driverId"]))

    per_race = dict(
        query(
            real_warehouse,
            "select race_id, sum(podium) from podium_features where not is_upcoming group by 1",
        )
    )
    assert per_race == {race: len(drivers) for race, drivers in podium_drivers.items()}

    [(base_rate, expected_rate)] = query(
        real_warehouse,
        "select avg(podium), avg(3.0 / grid_size) from podium_features where not is_upcoming",
    )
    # About 3 podium places per race over its entrants; shared drives add a few extra podiums.
    assert abs(base_rate - expected_rate) < 0.002


def test_upcoming_race_has_the_last_race_entrants_and_no_target(real_warehouse: Path) -> None:
    [(year, round_, rows, targets, features_missing)] = query(
        real_warehouse,
        "select any_value(year), any_value(round), count(*), count(podium), "
        "count(*) filter (where driver_podium_rate_10 is null) "
        "from podium_features where is_upcoming",
    )
    [(last_race_rows,)] = query(
        real_warehouse,
        "select count(*) from podium_features where year = 2025 and round = 18",
    )
    assert (year, round_) == (2025, 19)
    assert rows == last_race_rows == 20
    assert targets == 0
    assert features_missing == 0


def documented_queries() -> list[str]:
    """Every query the README and docs/ show: `make sql Q="..."` and ```sql blocks."""
    queries = []
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        queries += re.findall(r'make sql Q="([^"]+)"', text)
        queries += re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)
    return [" ".join(query.split()).rstrip(";") for query in queries]


def test_every_documented_query_runs_on_the_warehouse(real_warehouse: Path) -> None:
    queries = documented_queries()
    assert any("prediction_scorecard" in query for query in queries)
    with duckdb.connect(str(real_warehouse), read_only=True) as connection:
        for query in queries:
            connection.execute(query).fetchall()  # binds every column it names
    completed = subprocess.run(
        [sys.executable, "scripts/sql.py", "--warehouse", str(real_warehouse), queries[0]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "brier" in completed.stdout  # the scorecard's header, rows or not


def test_features_are_typed_by_the_contract(real_warehouse: Path) -> None:
    types = dict(
        query(
            real_warehouse,
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'podium_features'",
        )
    )
    assert types["race_date"] == "DATE"
    assert types["driver_id"] == "INTEGER"
    assert types["driver_podium_rate_10"] == "DOUBLE"
    assert types["is_home_race"] == "BOOLEAN"
    assert types["driver_ref"] == "VARCHAR"
    # Candidates measured only in the ablation live apart from the analysts' contract.
    assert "circuit_ref" not in types
    assert not any(name.endswith("_ungated") or "_ungated_" in name for name in types)

    candidate_types = dict(
        query(
            real_warehouse,
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'podium_feature_candidates'",
        )
    )
    assert candidate_types["driver_identifier"] == "VARCHAR"
    assert candidate_types["calendar_year"] == "INTEGER"
    assert candidate_types["practice_laps_ungated"] == "INTEGER"


def test_docs_generate_shows_lineage_to_the_exposure(warehouse_copy: Path, tmp_path: Path) -> None:
    # On a copy: dbt opens its warehouse for writing, which would lock out the other readers.
    env = dict(os.environ, PITWALL_DUCKDB=str(warehouse_copy))
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "docs",
            "generate",
            "--project-dir",
            "dbt_project",
            "--profiles-dir",
            ".",
            "--target-path",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    marts = ["model.pitwall.podium_features", "model.pitwall.podium_feature_candidates"]
    assert all(mart in catalog["nodes"] for mart in marts)

    exposure = manifest["exposures"]["exposure.pitwall.podium_model_training"]
    # Training reads the features and logs the drift report beside the served run.
    read = [*marts, "model.pitwall.feature_drift"]
    assert sorted(exposure["depends_on"]["nodes"]) == sorted(read)

    # Walk the lineage upwards from the marts: it must reach every raw source they read.
    parents = manifest["parent_map"]
    seen: set[str] = set()
    frontier = list(marts)
    while frontier:
        node = frontier.pop()
        for parent in parents.get(node, []):
            if parent not in seen:
                seen.add(parent)
                frontier.append(parent)
    for table in ("races", "results", "drivers", "constructors", "circuits", "status"):
        assert f"source.pitwall.ergast.{table}" in seen

    undocumented = [
        f"{node['name']}.{column}"
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed")
        for column, spec in node["columns"].items()
        if not spec.get("description")
    ]
    assert undocumented == []


@pytest.fixture
def warehouse_copy(real_warehouse: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "pitwall.duckdb"
    shutil.copyfile(real_warehouse, copy)
    return copy


def mini_source_with(real_raw_dir: Path, tmp_path: Path, **replacements: str) -> Path:
    """A copy of the loaded raw data with some files' text replaced."""
    source = tmp_path / "source"
    shutil.copytree(real_raw_dir, source)
    (source / "manifest.json").unlink()
    for name, text in replacements.items():
        (source / f"{name}.csv").write_text(text, encoding="utf-8")
    return source


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing_file", "missing file: qualifying.csv"),
        ("missing_column", "column 'positionOrder'"),
        ("bad_date", "column date"),
        ("duplicate_result_id", "duplicate"),
    ],
)
def test_bad_input_leaves_raw_data_and_warehouse_as_they_were(
    damage: str,
    expected: str,
    real_raw_dir: Path,
    warehouse_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw_dir = tmp_path / "raw"
    shutil.copytree(real_raw_dir, raw_dir)
    raw_before = {path.name: sha256(path) for path in raw_dir.iterdir()}
    warehouse_before = sha256(warehouse_copy)

    source = mini_source_with(real_raw_dir, tmp_path)
    if damage == "missing_file":
        (source / "qualifying.csv").unlink()
    elif damage == "missing_column":
        text = (source / "results.csv").read_text().replace("positionOrder", "position_order", 1)
        (source / "results.csv").write_text(text)
    elif damage == "bad_date":
        lines = (source / "races.csv").read_text().splitlines(keepends=True)
        lines[5] = lines[5].replace(lines[5].split(",")[5], '"2009-02-30"', 1)
        (source / "races.csv").write_text("".join(lines))
    else:
        lines = (source / "results.csv").read_text().splitlines(keepends=True)
        lines.append(lines[1])
        (source / "results.csv").write_text("".join(lines))

    # `make refresh` on the damaged source: refused before anything is replaced.
    monkeypatch.setenv("PITWALL_DUCKDB", str(warehouse_copy))
    monkeypatch.setenv("PITWALL_RAW_DIR", str(raw_dir))
    monkeypatch.setenv("PITWALL_PRACTICE_DIR", str(tmp_path / "practice"))
    assert refresh_main(["--source", str(source)]) == 2
    stderr = capsys.readouterr().err
    assert expected in stderr
    assert f"the data and the warehouse at {warehouse_copy} are unchanged" in stderr
    assert {path.name: sha256(path) for path in raw_dir.iterdir()} == raw_before
    assert sha256(warehouse_copy) == warehouse_before


def test_refresh_is_not_blocked_by_a_reader_and_swaps_atomically(
    real_raw_dir: Path, warehouse_copy: Path, tmp_path: Path
) -> None:
    reader = duckdb.connect(str(warehouse_copy), read_only=True)
    try:
        [(rows_before,)] = reader.execute("select count(*) from podium_features").fetchall()
        inode_before = warehouse_copy.stat().st_ino
        features = "select * from podium_features order by race_id, driver_id"
        features_before = reader.execute(features).fetchall()

        build(warehouse_copy, real_raw_dir, SKIP_TESTS, target_path=tmp_path / "target")

        assert warehouse_copy.stat().st_ino != inode_before
        # The open reader still sees the complete old file; new readers see the new one, built
        # from the same raw data: the same feature rows (a refresh after a rejected load).
        assert reader.execute("select count(*) from podium_features").fetchall() == [(rows_before,)]
        assert query(warehouse_copy, features) == features_before
    finally:
        reader.close()
