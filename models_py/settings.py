"""Where things live, the evaluation protocol, and the exit codes: built once, passed down.

Every command and script exits with one convention (README, "Exit codes"):
0 ok, 2 bad input or usage (argparse uses 2 too), 3 busy (another process holds a store),
130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
DEFAULT_MODEL_NAME = "podium"
DEFAULT_EXPERIMENT = "pitwall-podium"
DEFAULT_STUDY_STORAGE = "optuna.journal"
# Seconds between the heartbeats of a running trial in an RDB study storage.
DEFAULT_HEARTBEAT_SECONDS = 30


@dataclass(frozen=True)
class Locations:
    """The files and stores a command reads and writes."""

    warehouse: Path
    dbt_manifest: Path
    tracking_uri: str
    artifact_root: Path
    predictions_dir: Path

    @classmethod
    def from_environment(
        cls,
        warehouse: Path | None = None,
        dbt_manifest: Path | None = None,
        tracking_uri: str | None = None,
        artifact_root: Path | None = None,
        predictions_dir: Path | None = None,
    ) -> Locations:
        """Explicit values first, then the PITWALL_* / MLFLOW_* variables, then the defaults."""
        environment = os.environ
        return cls(
            warehouse=Path(
                warehouse or environment.get("PITWALL_DUCKDB", REPO_ROOT / "pitwall.duckdb")
            ).resolve(),
            dbt_manifest=Path(
                dbt_manifest or REPO_ROOT / "dbt_project" / "target" / "manifest.json"
            ).resolve(),
            tracking_uri=tracking_uri
            or environment.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
            artifact_root=Path(artifact_root or REPO_ROOT / "mlartifacts").resolve(),
            predictions_dir=Path(
                predictions_dir
                or environment.get("PITWALL_PREDICTIONS_DIR", REPO_ROOT / "predictions")
            ).resolve(),
        )


@dataclass(frozen=True)
class Protocol:
    """Rolling-season evaluation: each CV fold trains on `window` seasons and validates on the
    next; the test season is never in any fold. Post-processing is fitted on the out-of-fold
    scores of the `calibration_seasons` seasons before the one it serves."""

    window: int = 10
    first_cv_season: int = 2001
    last_cv_season: int = 2024
    test_season: int = 2025
    calibration_seasons: int = 5
    seed: int = 42
    # Folds trained side by side, one LightGBM thread each: on small folds this beats one fold
    # at a time on every core (scripts/bench_train.py measures both).
    workers: int = 2

    def describe(self) -> str:
        return (
            f"w{self.window} cv{self.first_cv_season}-{self.last_cv_season} "
            f"test{self.test_season} cal{self.calibration_seasons}"
        )


# The forecast store's columns and types (`train.py predict` and `replay` write them; the
# `predictions` view reads them; the build writes an empty `_schema.parquet` with them so the view
# reads the live store from the first build on).
STORE_COLUMNS = {
    "forecast_id": "varchar",
    "predicted_at": "timestamp with time zone",
    "moment": "varchar",
    "race_id": "integer",
    "year": "integer",
    "round": "integer",
    "driver_id": "integer",
    "constructor_id": "integer",
    "driver_ref": "varchar",
    "constructor_ref": "varchar",
    "driver_name": "varchar",
    "constructor_name": "varchar",
    "podium_probability": "double",
    "win_probability": "double",
    "points_probability": "double",
    "model_name": "varchar",
    "model_version": "varchar",
    "model_alias": "varchar",
    "entrant_source": "varchar",
    "data_version": "varchar",
    "practice_data_version": "varchar",
    "replay": "varchar",
    "replay_id": "varchar",
}
