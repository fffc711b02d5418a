"""Refresh the DuckDB warehouse with `dbt build`, safely.

dbt builds into a fresh file beside the warehouse; only when every model and test passes is that
file moved over the warehouse in one atomic rename. A failed or interrupted build leaves the
previous warehouse exactly as it was, and analysts reading the old file never block the refresh
(they keep reading the old inode until they reconnect). When a data test fails (or warns), its
failing rows are read from the new file before it is deleted and printed with the raw file they
come from, so the person who fixes the data sees what to fix.

Exit codes: 0 refreshed, 2 bad input (a failed data test, missing or invalid data), 3 busy
(another process has the warehouse open for writing), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

if __package__ in (None, ""):
    # Run as `python scripts/<name>.py`: make the repository importable, as `python -m` does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models_py.settings import EXIT_BAD_INPUT, EXIT_BUSY, EXIT_INTERRUPTED, EXIT_OK, STORE_COLUMNS
from scripts.entries import EntryListError, check_entry_lists, default_entries_dir
from scripts.load_practice import load_practice

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


# Failing rows printed per test, and the most raw files named for one (more says nothing).
MAX_FAILING_ROWS = 10
MAX_NAMED_FILES = 3
# Columns that lead a failing row back to its input line (results.csv: raceId, driverId...).
ROW_KEYS = (
    "year",
    "round",
    "race_id",
    "driver_id",
    "constructor_id",
    "circuit_id",
    "status_id",
    "result_id",
)
RACES_MODEL = "model.pitwall.stg_ergast__races"


class BuildError(RuntimeError):
    """The build failed; the message says why and that the warehouse is unchanged. `details`
    has one line per failing test row or failed node, naming the raw file where it can."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = list(details)


class WarehouseBusyError(BuildError):
    """Another process has the warehouse open for writing: nothing was built."""

    exit_code = EXIT_BUSY


def default_warehouse() -> Path:
    return Path(os.environ.get("PITWALL_DUCKDB", REPO_ROOT / "pitwall.duckdb")).resolve()


def default_raw_dir() -> Path:
    return Path(os.environ.get("PITWALL_RAW_DIR", REPO_ROOT / "data" / "raw")).resolve()


def default_practice_dir() -> Path:
    return Path(os.environ.get("PITWALL_PRACTICE_DIR", REPO_ROOT / "data" / "practice")).resolve()


def default_predictions_dir() -> Path:
    return Path(os.environ.get("PITWALL_PREDICTIONS_DIR", REPO_ROOT / "predictions")).resolve()


def dbt_executable() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else "dbt"


def remove_database_files(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


SKIP_TESTS = ["--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]


def run_dbt(
    building: Path,
    raw_dir: Path,
    practice_dir: Path,
    extra_args: list[str],
    target_path: Path | None,
) -> int:
    ensure_predictions_store(default_predictions_dir())
    env = dict(
        os.environ,
        PITWALL_DUCKDB=str(building),
        PITWALL_RAW_DIR=str(raw_dir),
        PITWALL_PRACTICE_DIR=str(practice_dir),
        # Absolute, so the predictions view works whichever directory an analyst opens it from.
        PITWALL_PREDICTIONS_DIR=str(default_predictions_dir()),
        PITWALL_ENTRIES_DIR=str(default_entries_dir()),
    )
    args = [
        dbt_executable(),
        "build",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(REPO_ROOT),
        *extra_args,
    ]
    if target_path is not None:
        args += ["--target-path", str(target_path)]
    # dbt must die with us: a SIGTERM to this process is forwarded before cleaning up.
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_json(path: Path) -> dict[str, Any]:
    """A dbt artifact, or {} when dbt died before writing it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def source_file(source: dict[str, Any]) -> str:
    """The raw file a dbt source reads, from its `external_location` (e.g. races.csv)."""
    metas = (source.get("meta"), source.get("config", {}).get("meta"), source.get("source_meta"))
    for meta in metas:
        location = (meta or {}).get("external_location", "")
        match = re.search(r"[^/'\"]+\.(?:csv|json)", location)
        if match:
            return match.group(0).replace("{name}", source["name"])
    return f"{source['name']}.csv"


def raw_files(manifest: dict[str, Any], unique_id: str) -> list[str]:
    """The raw files behind a test: its `meta.raw_files` when it declares them, else the sources
    and seeds upstream of it, or none when there are more than a few."""
    node = manifest.get("nodes", {}).get(unique_id, {})
    meta = node.get("config", {}).get("meta") or node.get("meta") or {}
    if "raw_files" in meta:
        return list(meta["raw_files"])
    parent_map = manifest.get("parent_map", {})
    found: set[str] = set()
    seen: set[str] = set()
    pending = [unique_id]
    while pending:
        for parent in parent_map.get(pending.pop(), []):
            if parent in seen:
                continue
            seen.add(parent)
            if parent.startswith("source."):
                found.add(source_file(manifest["sources"][parent]))
            elif parent.startswith("seed."):
                found.add(f"seeds/{manifest['nodes'][parent]['name']}.csv")
            else:
                pending.append(parent)
    return sorted(found) if len(found) <= MAX_NAMED_FILES else []


def describe_row(columns: list[str], row: tuple[Any, ...]) -> str:
    """A failing row: its `problem` column when the test writes one, else column=value pairs."""
    values = dict(zip(columns, row, strict=True))
    if values.get("problem"):
        return str(values["problem"])
    return ", ".join(f"{column}={value}" for column, value in values.items())


def failing_rows(connection: duckdb.DuckDBPyConnection, compiled_sql: str) -> list[str]:
    """Up to MAX_FAILING_ROWS rows the test's own SQL returns from the built file."""
    try:
        cursor = connection.execute(
            f"select * from (\n{compiled_sql}\n) as failing_rows limit {MAX_FAILING_ROWS}"
        )
        rows = cursor.fetchall()
    except duckdb.Error as error:
        return [f"(could not read the failing rows: {error})"]
    columns = [column[0] for column in cursor.description]
    return [describe_row(columns, row) for row in rows]


def offending_rows(
    connection: duckdb.DuckDBPyConnection, node: dict[str, Any], manifest: dict[str, Any]
) -> list[str] | None:
    """For a test of one model's column whose failing rows carry only the bad values (dbt's
    not_null, unique, accepted_values, relationships; value_between): the model's rows with
    those values, with the keys that lead back to the input (season, round, race, driver...).
    None when the test is not of that kind."""
    column = node.get("column_name")
    model = manifest.get("nodes", {}).get(node.get("attached_node") or "", {})
    relation = model.get("relation_name")
    if not column or not relation or not re.fullmatch(r"\w+", column):
        return None
    try:
        present = [
            c[0] for c in connection.execute(f"select * from {relation} limit 0").description
        ]
    except duckdb.Error:
        return None
    keys = [key for key in ROW_KEYS if key in present and key != column]
    if not keys:
        return None
    source = f"{relation} as tested"
    races = manifest.get("nodes", {}).get(RACES_MODEL, {}).get("relation_name")
    if "race_id" in keys and "year" not in keys and races:
        # A race id alone sends the reader to races.csv first: say the season and round.
        source += f" join {races} as races using (race_id)"
        keys = ["races.year", "races.round", *keys]
    if (node.get("test_metadata") or {}).get("name") == "not_null":
        condition = f"tested.{column} is null"
    else:  # the failing rows' first column holds the failing values
        condition = f"tested.{column} in (select #1 from (\n{node['compiled_code']}\n) as failing)"
    selected = ", ".join([*(k if "." in k else f"tested.{k}" for k in keys), f"tested.{column}"])
    try:
        cursor = connection.execute(
            f"select {selected} from {source} where {condition} "
            f"order by {', '.join(k if '.' in k else f'tested.{k}' for k in keys)} "
            f"limit {MAX_FAILING_ROWS}"
        )
        rows = cursor.fetchall()
    except duckdb.Error:
        return None
    columns = [description[0] for description in cursor.description]
    return [describe_row(columns, row) for row in rows]


def describe_test(
    result: dict[str, Any], manifest: dict[str, Any], connection: duckdb.DuckDBPyConnection
) -> list[str]:
    node = manifest.get("nodes", {}).get(result["unique_id"], {})
    name = node.get("name", result["unique_id"])
    if not result.get("compiled_code") or result["status"] == "error":
        return [f"{name}: {(result.get('message') or 'error').splitlines()[0]}"]
    files = " / ".join(raw_files(manifest, result["unique_id"]))
    count = result.get("failures") or 0
    shown = f", first {MAX_FAILING_ROWS} shown" if count > MAX_FAILING_ROWS else ""
    lines = [f"{name}: {count} failing row{'s' if count != 1 else ''}{shown}"]
    node = {**node, "compiled_code": result["compiled_code"]}
    rows = offending_rows(connection, node, manifest)
    if rows:
        lines[0] += f"; rows of {node['attached_node'].split('.')[-1]} with the failing values"
    for row in rows or failing_rows(connection, result["compiled_code"]):
        lines.append(f"  {files}: {row}" if files else f"  {row}")
    return lines


def describe_results(building: Path, target: Path, statuses: Sequence[str]) -> list[str]:
    """One block per dbt node with one of `statuses` (tests: their failing rows, read from the
    building file before it is deleted; models and unit tests: dbt's message)."""
    results = [
        result
        for result in read_json(target / "run_results.json").get("results", [])
        if result.get("status") in statuses
    ]
    if not results or not building.exists():
        return []
    manifest = read_json(target / "manifest.json")
    lines: list[str] = []
    with duckdb.connect(str(building), read_only=True) as connection:
        for result in results:
            if result["unique_id"].startswith("test."):
                lines += describe_test(result, manifest, connection)
            else:
                message = (result.get("message") or result["status"]).strip().splitlines()
                name = result["unique_id"].split(".", 2)[-1]
                lines.append(f"{name}: {message[-1] if message else result['status']}")
    return lines


def print_warning(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def ensure_not_in_use(warehouse: Path) -> None:
    """Refuse before building when another process writes the warehouse; readers never block."""
    if not warehouse.exists():
        return
    try:
        duckdb.connect(str(warehouse), read_only=True).close()
    except duckdb.Error as error:
        if "lock" not in str(error).lower():
            return  # unreadable for another reason: the new build replaces it
        holder = re.search(r"Conflicting lock is held in (.+?\(PID \d+\))", str(error))
        raise WarehouseBusyError(
            f"{warehouse} is in use by {holder.group(1) if holder else 'another process'}: "
            "close it and rebuild. The warehouse is unchanged"
        ) from error


def remove_stale_log(warehouse: Path, warn: Callable[[str], None]) -> None:
    """A write-ahead log beside a warehouse nobody holds was left by a writer that crashed (a
    DuckDB CLI killed after a write). It belongs to the file being replaced; beside the new one
    DuckDB would try to replay it there."""
    log = warehouse.with_name(warehouse.name + ".wal")
    if log.exists():
        warn(
            f"removed {log}, left by a process that crashed while writing the old warehouse "
            "(its changes were not part of any build)"
        )
        log.unlink()


def ensure_predictions_store(store: Path) -> None:
    """An empty, typed `_schema.parquet` in the forecast store: DuckDB refuses a glob that matches
    no file, so without it the `predictions` view would be built empty and blind to the first
    forecast until the next build. With it, the view reads the live store from the first build."""
    schema = store / "_schema.parquet"
    if schema.exists():
        with duckdb.connect() as connection:
            columns = connection.execute(
                f"select name from parquet_schema('{schema}') where name != 'duckdb_schema'"
            ).fetchall()
        if [name for (name,) in columns] == list(STORE_COLUMNS):
            return  # written by a build that stored the same columns as this one
    store.mkdir(parents=True, exist_ok=True)
    columns = ", ".join(f'cast(null as {kind}) as "{name}"' for name, kind in STORE_COLUMNS.items())
    partial = store / f"._schema.{os.getpid()}.parquet"
    with duckdb.connect() as connection:
        connection.execute(f"copy (select {columns} where false) to '{partial}' (format parquet)")
    os.replace(partial, schema)


def summarize(building: Path) -> str:
    with duckdb.connect(str(building)) as connection:
        # Fold the write-ahead log into the file so the renamed file is complete on its own.
        connection.execute("checkpoint")
        rows, races, upcoming = connection.execute(
            "select count(*), count(distinct race_id), count(*) filter (where is_upcoming) "
            "from podium_features"
        ).fetchone()
    return f"podium_features: {rows} rows over {races} races ({upcoming} upcoming-race rows)"


def remove_abandoned_builds(warehouse: Path, target: Path) -> None:
    """Delete build files and dbt target folders left by killed builds (their process is gone)."""
    candidates = [
        *warehouse.parent.glob(f"{warehouse.name}.building-*"),
        *target.parent.glob(f"{target.name}.building-*"),
        *target.parent.glob(f"{target.name}.retired-*"),
    ]
    for leftover in candidates:
        pid = leftover.name.rsplit("-", 1)[-1].removesuffix(".wal")
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def build(
    warehouse: Path,
    raw_dir: Path,
    extra_args: list[str] | None = None,
    target_path: Path | None = None,
    practice_dir: Path | None = None,
    warn: Callable[[str], None] = print_warning,
) -> str:
    """Run `dbt build` into a fresh file and swap it in; returns a one-line summary.

    Practice data is optional: without a loaded practice folder the build reads header-only
    files, and the practice features are null. Raises BuildError (WarehouseBusyError when the
    warehouse is being written) with the failing rows of every failed test in `details`; the
    rows of tests that only warn go to `warn`, one line each, and the build goes on.
    """
    if not (raw_dir / "manifest.json").exists():
        raise BuildError(
            f"no raw data in {raw_dir} (manifest.json missing): run `make data` "
            "(python scripts/load_data.py --source ...) first; the warehouse is unchanged"
        )
    try:
        check_entry_lists(default_entries_dir())
    except EntryListError as error:
        raise BuildError(f"{error}\nthe warehouse at {warehouse} is unchanged") from None
    practice_dir = practice_dir or default_practice_dir()
    if not (practice_dir / "manifest.json").exists():
        with tempfile.TemporaryDirectory(prefix="pitwall-no-practice-") as folder:
            empty = Path(folder) / "practice"
            load_practice(None, empty)
            return build(warehouse, raw_dir, extra_args, target_path, empty, warn)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    ensure_not_in_use(warehouse)
    # dbt's manifest declares the feature list training reads: it must describe the warehouse
    # that is in place, so it is built aside too and swapped in with the warehouse.
    target = target_path or DBT_PROJECT_DIR / "target"
    remove_abandoned_builds(warehouse, target)
    building = warehouse.with_name(f"{warehouse.name}.building-{os.getpid()}")
    remove_database_files(building)
    building_target = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building_target, ignore_errors=True)
    if target.exists():
        shutil.copytree(target, building_target)  # keeps dbt's partial parsing fast
    try:
        exit_code = run_dbt(building, raw_dir, practice_dir, extra_args or [], building_target)
        if exit_code != 0:
            raise BuildError(
                f"dbt build failed (exit {exit_code}); the warehouse at {warehouse} is unchanged",
                describe_results(building, building_target, ("fail", "error")),
            )
        for line in describe_results(building, building_target, ("warn",)):
            warn(line)
        summary = summarize(building)
        # A writer may have opened the warehouse while dbt ran.
        ensure_not_in_use(warehouse)
        remove_stale_log(warehouse, warn)
        os.replace(building, warehouse)
        replace_folder(building_target, target)
        return summary
    finally:
        remove_database_files(building)
        shutil.rmtree(building_target, ignore_errors=True)


def replace_folder(new: Path, old: Path) -> None:
    retired = old.with_name(f"{old.name}.retired-{os.getpid()}")
    if old.exists():
        os.replace(old, retired)
    os.replace(new, old)
    shutil.rmtree(retired, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB file to refresh (default: $PITWALL_DUCKDB or ./pitwall.duckdb)",
    )
    parser.add_argument(
        "--raw-dir",
        type=Path,
        default=None,
        help="raw CSV folder written by the loader (default: $PITWALL_RAW_DIR or ./data/raw)",
    )
    parser.add_argument(
        "--practice-dir",
        type=Path,
        default=None,
        help="free-practice folder written by scripts/load_practice.py (default: "
        "$PITWALL_PRACTICE_DIR or ./data/practice; none loaded: practice features are null)",
    )
    parser.add_argument(
        "--skip-tests",
        action="store_true",
        help="build models and seeds only (faster; the swapped-in warehouse is then untested)",
    )
    parser.add_argument(
        "--target-path",
        type=Path,
        default=None,
        help="dbt target folder (default: dbt_project/target)",
    )
    args = parser.parse_args(argv)

    warehouse = (args.warehouse or default_warehouse()).resolve()
    raw_dir = (args.raw_dir or default_raw_dir()).resolve()
    started = time.perf_counter()
    try:
        summary = build(
            warehouse,
            raw_dir,
            SKIP_TESTS if args.skip_tests else [],
            args.target_path,
            args.practice_dir.resolve() if args.practice_dir else None,
        )
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        for line in error.details:
            print(f"  {line}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"interrupted; the warehouse at {warehouse} is unchanged", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"warehouse {warehouse} refreshed in {time.perf_counter() - started:.1f} s; {summary}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
