"""Refresh the DuckDB warehouse with `dbt build`, safely.

dbt builds into a fresh file beside the warehouse; only when every model and test passes is that
file moved over the warehouse in one atomic rename. A failed or interrupted build leaves the
previous warehouse exactly as it was, and analysts reading the old file never block the refresh
(they keep reading the old inode until they reconnect).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

if __package__ in (None, ""):
    # Run as `python scripts/<name>.py`: make the repository importable, as `python -m` does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.load_practice import load_practice

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


class BuildError(RuntimeError):
    """The build failed; the message says why and that the warehouse is unchanged."""


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
    env = dict(
        os.environ,
        PITWALL_DUCKDB=str(building),
        PITWALL_RAW_DIR=str(raw_dir),
        PITWALL_PRACTICE_DIR=str(practice_dir),
        # Absolute, so the predictions view works whichever directory an analyst opens it from.
        PITWALL_PREDICTIONS_DIR=str(default_predictions_dir()),
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


def summarize(building: Path) -> str:
    with duckdb.connect(str(building)) as connection:
        # Fold the write-ahead log into the file so the renamed file is complete on its own.
        connection.execute("checkpoint")
        rows, races, upcoming = connection.execute(
            "select count(*), count(distinct race_id), count(*) filter (where is_upcoming) "
            "from podium_features"
        ).fetchone()
    return f"podium_features: {rows} rows over {races} races ({upcoming} upcoming-race rows)"


def remove_abandoned_builds(warehouse: Path) -> None:
    """Delete build files and dbt target folders left by killed builds (their process is gone)."""
    candidates = [
        *warehouse.parent.glob(f"{warehouse.name}.building-*"),
        *DBT_PROJECT_DIR.glob("target.building-*"),
        *DBT_PROJECT_DIR.glob("target.retired-*"),
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
) -> str:
    """Run `dbt build` into a fresh file and swap it in; returns a one-line summary.

    Practice data is optional: without a loaded practice folder the build reads header-only
    files, and the practice features are null.
    """
    if not (raw_dir / "manifest.json").exists():
        raise BuildError(
            f"no raw data in {raw_dir} (manifest.json missing): run `make data` "
            "(python scripts/load_data.py --source ...) first; the warehouse is unchanged"
        )
    practice_dir = practice_dir or default_practice_dir()
    if not (practice_dir / "manifest.json").exists():
        with tempfile.TemporaryDirectory(prefix="pitwall-no-practice-") as folder:
            empty = Path(folder) / "practice"
            load_practice(None, empty)
            return build(warehouse, raw_dir, extra_args, target_path, empty)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(warehouse)
    building = warehouse.with_name(f"{warehouse.name}.building-{os.getpid()}")
    remove_database_files(building)
    # dbt's manifest declares the feature list training reads: it must describe the warehouse
    # that is in place, so it is built aside too and swapped in with the warehouse.
    target = target_path or DBT_PROJECT_DIR / "target"
    building_target = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building_target, ignore_errors=True)
    if target.exists():
        shutil.copytree(target, building_target)  # keeps dbt's partial parsing fast
    try:
        exit_code = run_dbt(building, raw_dir, practice_dir, extra_args or [], building_target)
        if exit_code != 0:
            raise BuildError(
                f"dbt build failed (exit {exit_code}); the warehouse at {warehouse} is unchanged"
            )
        summary = summarize(building)
        stale_wal = warehouse.with_name(warehouse.name + ".wal")
        if stale_wal.exists():
            raise BuildError(
                f"{stale_wal} exists: a process has {warehouse} open for writing (or crashed while "
                "writing); close it and rebuild. The warehouse is unchanged"
            )
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
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; the warehouse at {warehouse} is unchanged", file=sys.stderr)
        return 130
    print(f"warehouse {warehouse} refreshed in {time.perf_counter() - started:.1f} s; {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
