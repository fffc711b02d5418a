"""The settings of one training run, built once from the command line and passed down."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
DEFAULT_ARTIFACT_ROOT = REPO_ROOT / "mlartifacts"


@dataclass(frozen=True)
class TrainConfig:
    warehouse: Path
    dbt_manifest: Path
    raw_dir: Path
    window: int = 10
    first_cv_season: int = 2001
    last_cv_season: int = 2024
    test_season: int = 2025
    experiment: str = "pitwall-podium"
    tracking_uri: str = DEFAULT_TRACKING_URI
    artifact_root: Path = DEFAULT_ARTIFACT_ROOT
    seed: int = 42
    threads: int = 2
    scale_pos_weight: float = 1.0
    tune_class_weight: bool = False
    calibration_seasons: int = 5
    calibrate: bool = True
    normalise: bool = True
    challenger: bool = True
    baselines: bool = True
    trials: int = 50
    storage: str | None = None
    study_name: str | None = None
    tune_only: bool = False
    model_name: str = "podium-lgbm"


def default_warehouse() -> Path:
    return Path(os.environ.get("PITWALL_DUCKDB", REPO_ROOT / "pitwall.duckdb"))


def default_raw_dir() -> Path:
    return Path(os.environ.get("PITWALL_RAW_DIR", REPO_ROOT / "data" / "raw"))


def default_dbt_manifest() -> Path:
    return REPO_ROOT / "dbt_project" / "target" / "manifest.json"


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """Where the warehouse, the feature list and the MLflow store are: shared by every command."""
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB file (default: $PITWALL_DUCKDB or ./pitwall.duckdb)",
    )
    parser.add_argument(
        "--dbt-manifest",
        type=Path,
        default=None,
        help="dbt manifest declaring the feature list (default dbt_project/target/manifest.json)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)",
    )
