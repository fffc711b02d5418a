"""Shared fixtures: the real Ergast data loaded once, and a warehouse built from it once."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from scripts.build_warehouse import build
from scripts.load_data import load
from scripts.load_practice import load_practice

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_F1 = REPO_ROOT.parent / "shared" / "data" / "f1"
SHARED_F1DB = REPO_ROOT.parent / "shared" / "data" / "f1db"


def shared_source(variable: str, shared: Path, marker: str) -> str:
    """A real data source: $variable, else the folder in ../shared that holds `marker`.

    Under CI a missing source fails the run instead of skipping every real-data test.
    """
    source = os.environ.get(variable)
    if source:
        return source
    if (shared / marker).exists():
        return str(shared)
    message = f"no real data: set {variable} or provide {shared}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def real_data_source() -> str:
    """The Ergast data `make setup` loads ($PITWALL_DATA_SOURCE), else ../shared/data/f1."""
    return shared_source("PITWALL_DATA_SOURCE", SHARED_F1, "races.csv")


def real_practice_source() -> str:
    """The practice data ($PITWALL_PRACTICE_SOURCE), else ../shared/data/f1db."""
    return shared_source("PITWALL_PRACTICE_SOURCE", SHARED_F1DB, "f1db-races.csv")


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session", autouse=True)
def isolated_stores(tmp_path_factory: pytest.TempPathFactory):
    """Keep every test away from the working tree's predictions store and MLflow store."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PITWALL_PREDICTIONS_DIR", str(tmp_path_factory.mktemp("predictions")))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/x.db")
        yield


@pytest.fixture(scope="session")
def real_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data, validated and placed by the project's loader."""
    raw_dir = tmp_path_factory.mktemp("raw") / "ergast"
    load(real_data_source(), raw_dir, log=lambda _line: None)
    return raw_dir


@pytest.fixture(scope="session")
def real_practice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real free-practice data (f1db), validated and placed by the practice loader."""
    practice_dir = tmp_path_factory.mktemp("raw") / "practice"
    load_practice(real_practice_source(), practice_dir)
    return practice_dir


@pytest.fixture(scope="session")
def real_warehouse(
    tmp_path_factory: pytest.TempPathFactory, real_raw_dir: Path, real_practice_dir: Path
) -> Path:
    """A full `dbt build` (models, seeds, data and unit tests) on the real data."""
    folder = tmp_path_factory.mktemp("warehouse")
    warehouse = folder / "pitwall.duckdb"
    build(warehouse, real_raw_dir, target_path=folder / "target", practice_dir=real_practice_dir)
    return warehouse


@pytest.fixture(scope="session")
def real_manifest(real_warehouse: Path) -> Path:
    """dbt's manifest of the build above: it declares the feature list."""
    return real_warehouse.parent / "target" / "manifest.json"
