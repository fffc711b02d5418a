"""Bad input to training and scoring: one clear line, a non-zero exit, nothing written.

The commands run in this process (`cli.main`, as `train.py` calls it): the refusals come before
any work, so an interpreter start would be most of each test."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from scripts.build_warehouse import SKIP_TESTS, build
from scripts.load_data import load
from tests.helpers import Result, held_for_writing, invoke_predict, invoke_train, sqlite_uri

pytestmark = pytest.mark.slow


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_refused(completed: Result, message: str, store: Path) -> None:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    # Refused before MLflow was touched: no store, so nothing in any registry.
    assert not (store / "mlruns.db").exists()


def broken_copy(real_warehouse: Path, folder: Path, change: str | None) -> Path:
    copy = folder / "broken.duckdb"
    if change is None:
        duckdb.connect(str(copy)).close()  # a warehouse dbt never built
        return copy
    shutil.copyfile(real_warehouse, copy)
    with duckdb.connect(str(copy)) as connection:
        connection.execute(change)
    return copy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "has no table podium_features: run `make build`"),
        (
            "alter table podium_features drop column driver_age_years",
            "no column 'driver_age_years'",
        ),
        (
            "alter table podium_features alter grid_size type varchar",
            "grid_size is VARCHAR, the dbt contract says INTEGER",
        ),
    ],
    ids=["dbt-never-run", "missing-feature", "wrong-type"],
)
def test_training_refuses_a_broken_feature_table(
    change: str | None, message: str, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    warehouse = broken_copy(real_warehouse, tmp_path, change)
    before = sha256(warehouse)
    completed = invoke_train(warehouse, real_manifest, "--tracking-uri", sqlite_uri(tmp_path))
    assert_refused(completed, message, tmp_path)
    assert sha256(warehouse) == before


def test_training_refuses_a_missing_warehouse(real_manifest: Path, tmp_path: Path) -> None:
    completed = invoke_train(
        tmp_path / "nowhere.duckdb", real_manifest, "--tracking-uri", sqlite_uri(tmp_path)
    )
    assert_refused(completed, "no warehouse at", tmp_path)


@pytest.mark.parametrize(
    ("seasons", "message"),
    [
        (["--test-season", "2031"], "test season 2031 has no results"),
        (["--window", "80"], "the data begins in 1950"),
        (["--first-cv-season", "2023", "--last-cv-season", "2022"], "is after the last CV season"),
    ],
    ids=["test-season-without-results", "window-longer-than-history", "first-after-last"],
)
def test_training_refuses_impossible_seasons(
    seasons: list[str], message: str, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    completed = invoke_train(
        real_warehouse, real_manifest, *seasons, "--tracking-uri", sqlite_uri(tmp_path)
    )
    assert_refused(completed, message, tmp_path)


def test_predict_without_an_upcoming_race(
    real_raw_dir: Path, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    # The calendar ends with the last race that has results: predict says so before it even
    # looks for a model (there is none in this store).
    source = tmp_path / "source"
    shutil.copytree(real_raw_dir, source)
    (source / "manifest.json").unlink()
    races = (source / "races.csv").read_text().splitlines(keepends=True)
    header, rows = races[0], races[1:]
    scheduled_only = {("2025", str(round_)) for round_ in range(19, 25)}
    kept = [row for row in rows if tuple(row.split(",")[1:3]) not in scheduled_only]
    (source / "races.csv").write_text(header + "".join(kept))
    load(str(source), tmp_path / "raw")
    finished_calendar = tmp_path / "finished.duckdb"
    build(finished_calendar, tmp_path / "raw", SKIP_TESTS, target_path=tmp_path / "target")

    completed = invoke_predict(tmp_path, finished_calendar, real_manifest)
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "error: no upcoming race in the data: every scheduled race has results"
    )
    assert not (tmp_path / "predictions").exists()


def test_predict_while_another_process_writes_the_warehouse(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "pitwall.duckdb"
    shutil.copyfile(real_warehouse, warehouse)
    with held_for_writing(warehouse) as pid:
        completed = invoke_predict(tmp_path, warehouse, real_manifest)
    assert completed.returncode == 3
    [line] = completed.stderr.strip().splitlines()
    assert line.startswith(f"error: {warehouse} is in use by ")
    assert f"(PID {pid}), which has it open for writing: close that program" in line
    assert not (tmp_path / "predictions").exists()
