"""Who may touch the warehouse, and how: analysts' SQL (`make sql`, scripts/sql.py) reads the
warehouse and the forecast store and writes nothing (a result is saved only through --output,
written by the script), and a warehouse another process holds open for writing is named, with the
program and PID, in one line and exit 3 by `make sql`, by predict's connection and by the build.

A tiny warehouse in a temporary folder (a table, and a view over a Parquet file in a temporary
forecast store, as the `predictions` view reads the real one); no real-data build."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from models_py.features import WarehouseBusyError, connect_read_only
from scripts import build_warehouse, refresh, sql
from tests.conftest import REPO_ROOT
from tests.helpers import held_for_writing


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "predictions"
    (folder / "2025").mkdir(parents=True)
    with duckdb.connect() as connection:
        connection.execute(
            f"copy (select 'abc' as forecast_id, 0.5 as podium_probability) "
            f"to '{folder / '2025' / 'abc.parquet'}' (format parquet)"
        )
    monkeypatch.setenv("PITWALL_PREDICTIONS_DIR", str(folder))
    return folder


@pytest.fixture
def warehouse(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "pitwall.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("create table podium_features as select range as race_id from range(3)")
        connection.execute(
            f"create view predictions as select * from read_parquet('{store}/**/*.parquet')"
        )
    return path


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A readable file outside the store, and a folder to write results into."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return folder


def run_sql(warehouse: Path, *args: str) -> int:
    return sql.main(["--warehouse", str(warehouse), *args])


def refused(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refusal prints."""
    captured = capsys.readouterr()
    assert captured.err.startswith("error: refused: "), captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    return captured.err


def test_copy_to_a_file_is_refused_and_writes_nothing(
    warehouse: Path, store: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for target in (elsewhere / "out.csv", store / "out.parquet"):
        code = run_sql(warehouse, f"copy podium_features to '{target}'")
        assert code == 2
        message = refused(capsys)
        assert "COPY" in message and "OUT=results.csv" in message and "--output" in message
        assert not target.exists()
    # Hidden inside EXPLAIN ANALYZE or after a harmless statement: the same.
    for query in (
        f"explain analyze copy podium_features to '{store / 'x.csv'}'",
        f"select 1; copy podium_features to '{elsewhere / 'x.csv'}'",
    ):
        assert run_sql(warehouse, query) == 2
        assert "COPY" in refused(capsys)
    assert sorted(path.name for path in store.rglob("*")) == ["2025", "abc.parquet"]
    assert sorted(path.name for path in elsewhere.iterdir()) == ["secret.csv"]


def test_attaching_another_database_read_write_is_refused(
    warehouse: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = elsewhere / "other.duckdb"
    duckdb.connect(str(other)).close()
    assert run_sql(warehouse, f"attach '{other}' as other (read_write)") == 2
    assert "ATTACH" in refused(capsys)


def test_reading_a_file_outside_the_store_is_refused(
    warehouse: Path, store: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = elsewhere / "secret.csv"
    for query in (
        f"select * from read_csv('{secret}')",
        f"select * from read_text('{secret}')",
        f"select * from read_csv('{store}/../elsewhere/secret.csv')",
        "select * from read_csv('/etc/passwd')",
    ):
        assert run_sql(warehouse, query) == 2, query
        message = refused(capsys)
        assert "Cannot access file" in message and str(store) in message


def test_the_sandbox_cannot_be_switched_off(
    warehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for setting in (
        "set enable_external_access = true",
        "reset enable_external_access",
        "set lock_configuration = false",
        "set allowed_directories = ['/']",
    ):
        assert run_sql(warehouse, setting) == 2, setting
        assert "settings are locked" in refused(capsys)


def test_a_view_over_the_store_and_plain_queries_still_work(
    warehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_sql(warehouse, "select forecast_id, podium_probability from predictions") == 0
    assert "abc" in capsys.readouterr().out
    assert run_sql(warehouse, "select count(*) as n from podium_features") == 0
    assert "3" in capsys.readouterr().out
    assert run_sql(warehouse, "describe predictions") == 0
    assert "podium_probability" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_output_writes_the_result(
    warehouse: Path, elsewhere: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    output = elsewhere / f"result{suffix}"
    query = "select f.race_id, p.forecast_id from podium_features f, predictions p order by 1"
    assert run_sql(warehouse, "--output", str(output), query) == 0
    assert f"wrote 3 rows to {output}" in capsys.readouterr().out
    with duckdb.connect() as connection:
        rows = connection.execute(f"select * from '{output}' order by 1").fetchall()
    assert rows == [(0, "abc"), (1, "abc"), (2, "abc")]
    assert sorted(path.name for path in elsewhere.iterdir()) == ["result" + suffix, "secret.csv"]


def test_output_is_refused_in_the_store_or_with_an_unknown_format(
    warehouse: Path, store: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_sql(warehouse, "--output", str(store / "x.parquet"), "select 1") == 2
    assert "forecast store" in refused(capsys)
    assert run_sql(warehouse, "--output", str(elsewhere / "x.json"), "select 1") == 2
    assert ".csv or .parquet" in capsys.readouterr().err
    assert not (store / "x.parquet").exists() and not (elsewhere / "x.json").exists()


@pytest.fixture
def held(warehouse: Path) -> Iterator[tuple[Path, int]]:
    """The warehouse, open for writing in another process; and that process's PID."""
    with held_for_writing(warehouse) as pid:
        yield warehouse, pid


def test_sql_names_the_process_holding_the_warehouse(held: tuple[Path, int]) -> None:
    warehouse, pid = held
    completed = subprocess.run(
        [sys.executable, "scripts/sql.py", "--warehouse", str(warehouse), "select 1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 3, completed.stderr
    assert completed.stderr.startswith(f"error: {warehouse} is in use by ")
    assert f"(PID {pid})" in completed.stderr and "DuckDB CLI" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr  # no traceback


def test_predict_connection_names_the_process_holding_the_warehouse(
    held: tuple[Path, int],
) -> None:
    warehouse, pid = held
    with pytest.raises(WarehouseBusyError, match=rf"is in use by .*\(PID {pid}\)") as raised:
        connect_read_only(warehouse)
    assert str(raised.value).startswith(f"{warehouse} is in use by ")
    assert "close that program" in str(raised.value)
    assert raised.value.exit_code == 3


def test_build_refuses_a_warehouse_held_for_writing(held: tuple[Path, int]) -> None:
    warehouse, pid = held
    with pytest.raises(build_warehouse.WarehouseBusyError, match=rf"\(PID {pid}\)"):
        build_warehouse.ensure_not_in_use(warehouse)


def test_refresh_refuses_before_loading_anything(
    held: tuple[Path, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`make refresh` while another process writes the warehouse: nothing is loaded (the raw
    data stays as it was) and nothing is built."""
    warehouse, pid = held
    monkeypatch.setenv("PITWALL_DUCKDB", str(warehouse))
    monkeypatch.setenv("PITWALL_RAW_DIR", str(tmp_path / "raw"))
    monkeypatch.setenv("PITWALL_PRACTICE_DIR", str(tmp_path / "practice"))
    assert refresh.main(["--source", str(tmp_path / "never-read")]) == 3
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"error: {warehouse} is in use by ")
    assert f"(PID {pid}): close it and rebuild. The warehouse is unchanged" in stderr
    assert not (tmp_path / "raw").exists() and not (tmp_path / "practice").exists()


def test_a_log_left_by_a_crashed_writer_does_not_block_the_next_build(tmp_path: Path) -> None:
    """A DuckDB session killed after a write leaves `pitwall.duckdb.wal` and no lock: the build
    goes ahead, and the log, which belongs to the file being replaced, goes with it."""
    warehouse = tmp_path / "pitwall.duckdb"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys, duckdb; c = duckdb.connect(sys.argv[1]); "
            "c.execute('create table t as select 1 as x'); os._exit(0)",
            str(warehouse),
        ],
        check=True,
    )
    log = tmp_path / "pitwall.duckdb.wal"
    assert log.exists()
    build_warehouse.ensure_not_in_use(warehouse)  # nobody holds it: no refusal
    said: list[str] = []
    build_warehouse.remove_stale_log(warehouse, said.append)
    assert not log.exists()
    assert said == [
        f"removed {log}, left by a process that crashed while writing the old warehouse (its "
        "changes were not part of any build)"
    ]
