"""Shared fixtures: the real Ergast data loaded once, and a warehouse built from it once."""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.build_warehouse import build, default_practice_dir, default_raw_dir
from scripts.load_data import load
from scripts.load_practice import load_practice

# dbt build arguments for scenario builds: every data test, but not the unit tests, which do not
# depend on the data (test_dbt_unit runs them).
UNIT_TESTS_ASIDE = ["--exclude-resource-type", "unit_test"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_F1 = REPO_ROOT.parent / "shared" / "data" / "f1"
SHARED_F1DB = REPO_ROOT.parent / "shared" / "data" / "f1db"


def shared_source(variable: str, placed: Path, shared: Path, marker: str) -> str:
    """A real data source: $variable; else the folder the loader placed (`make setup` or
    `make data`, whatever source it came from: its manifest.json says which); else the folder
    in ../shared that holds `marker`.

    Under CI a missing source fails the run instead of skipping every real-data test.
    """
    source = os.environ.get(variable)
    if source:
        return source
    if (placed / "manifest.json").exists():
        return str(placed)
    if (shared / marker).exists():
        return str(shared)
    message = f"no real data: set {variable}, run `make data`, or provide {shared}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def real_data_source() -> str:
    """The Ergast data: $PITWALL_DATA_SOURCE, else what `make data` placed, else ../shared."""
    return shared_source("PITWALL_DATA_SOURCE", default_raw_dir(), SHARED_F1, "races.csv")


def real_practice_source() -> str:
    """The practice data: $PITWALL_PRACTICE_SOURCE, else what `make data` placed, else
    ../shared/data/f1db."""
    return shared_source(
        "PITWALL_PRACTICE_SOURCE", default_practice_dir(), SHARED_F1DB, "f1db-races.csv"
    )


def pytest_report_header() -> str:
    """Which real data this run tests on."""
    try:
        return f"real data: {real_data_source()} (practice: {real_practice_source()})"
    except (pytest.skip.Exception, pytest.fail.Exception) as missing:
        return f"real data: none ({missing.msg}): the real-data tests will not run"


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session", autouse=True)
def isolated_stores(tmp_path_factory: pytest.TempPathFactory):
    """Keep every test away from the working tree's predictions store and MLflow store."""
    with pytest.MonkeyPatch.context() as patch:
        # A crash in a command the tests start prints its Python traceback.
        patch.setenv("PYTHONFAULTHANDLER", "1")
        # One store for the run, like the real warehouse whose `predictions` view reads it:
        # shared by the xdist workers (make sql allows reading only the store the view reads).
        patch.setenv("PITWALL_PREDICTIONS_DIR", str(run_folder(tmp_path_factory) / "predictions"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/x.db")
        yield


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's temporary folder, shared by its pytest-xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # above each worker's own
    return root


def prepared_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, prepare: Callable[[Path], object]
) -> Path:
    """A folder `prepare` fills once per test run: under pytest-xdist every worker shares it
    (the first to take the lock prepares it, the others wait and reuse it)."""
    root = run_folder(tmp_path_factory)
    folder = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".ready").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            prepare(folder)
            (folder / ".ready").touch()
    return folder


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data, validated and placed by the project's loader."""
    source = real_data_source()
    folder = prepared_once(
        tmp_path_factory,
        "real-raw",
        lambda folder: load(source, folder / "ergast", log=lambda _line: None),
    )
    return folder / "ergast"


@pytest.fixture(scope="session")
def real_practice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real free-practice data (f1db), validated and placed by the practice loader."""
    source = real_practice_source()
    folder = prepared_once(
        tmp_path_factory, "real-practice", lambda folder: load_practice(source, folder / "f1db")
    )
    return folder / "f1db"


@pytest.fixture(scope="session")
def real_warehouse(
    tmp_path_factory: pytest.TempPathFactory, real_raw_dir: Path, real_practice_dir: Path
) -> Path:
    """`dbt build` on the real data, every data test included (the unit tests, which do not
    depend on the data, run in test_dbt_unit); tests only read it (copy it first to change it)."""
    folder = prepared_once(
        tmp_path_factory,
        "real-warehouse",
        lambda folder: build(
            folder / "pitwall.duckdb",
            real_raw_dir,
            UNIT_TESTS_ASIDE,
            target_path=folder / "target",
            practice_dir=real_practice_dir,
        ),
    )
    return folder / "pitwall.duckdb"


@pytest.fixture(scope="session")
def real_manifest(real_warehouse: Path) -> Path:
    """dbt's manifest of the build above: it declares the feature list."""
    return real_warehouse.parent / "target" / "manifest.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order `make test` (pytest -n 2 --dist loadfile --no-loadscope-reorder) hands files to
    its two workers: one real-data module first (its worker builds the real warehouse), then the
    unit tests (the other worker runs them meanwhile), then the other real-data modules."""
    slow_files = list(dict.fromkeys(item.path for item in items if item.get_closest_marker("slow")))

    def group(item: pytest.Item) -> int:
        if item.path not in slow_files:
            return 1
        return 0 if item.path == slow_files[0] else 2

    items.sort(key=group)
