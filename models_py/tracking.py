"""MLflow: where runs go, what every run records, and the artifacts of a training run."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import mlflow
import pandas as pd

from models_py.config import REPO_ROOT, TrainConfig
from models_py.dataset import FeatureData
from models_py.evaluation import FoldResult, fold_table, pooled_predictions
from models_py.plots import (
    brier_by_season_plot,
    calibration_plot,
    distribution_plot,
    importance_plot,
    roc_plot,
)

MAX_PARAM_LENGTH = 6000
OOF_COLUMNS = ["race_id", "driver_id", "year", "round", "probability", "actual"]

# Keys are integers and features floats by design; MLflow's hint about integer columns that
# cannot hold missing values does not apply and would only clutter the training output.
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
# Per-file download bars for one small JSON file are noise in the training and scoring output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow prints "View run at <tracking URI>" links, credentials included; ours are redacted.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def configure(config: TrainConfig) -> str:
    """Point MLflow at the store and make the experiment (created if new) the active one."""
    mlflow.set_tracking_uri(config.tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.experiment)
    if experiment is None:
        artifact_location = None
        if urlsplit(config.tracking_uri).scheme in ("sqlite", "file", ""):
            # A local store keeps artifacts beside it, one folder per experiment, as
            # `mlflow server --default-artifact-root ./mlartifacts` would.
            folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.experiment)
            artifact_location = (config.artifact_root / folder).resolve().as_uri()
        mlflow.create_experiment(config.experiment, artifact_location=artifact_location)
    return mlflow.set_experiment(config.experiment).experiment_id


class StoreBusyError(RuntimeError):
    """Another training process holds the local SQLite store."""


_store_lock: object | None = None


def lock_local_store(tracking_uri: str) -> None:
    """Refuse at once, clearly, when another train.py is writing the same SQLite store.

    SQLite serializes writers; two long trainings interleaving hundreds of writes would meet
    `database is locked` somewhere in the middle. A tracking server is the engine for
    concurrent training; the embedded default stays one writer at a time.
    """
    global _store_lock
    parts = urlsplit(tracking_uri)
    if parts.scheme != "sqlite" or _store_lock is not None:
        return
    database = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0])
    lock_path = database.with_name(database.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreBusyError(
            f"{tracking_uri} is in use by {holder}: wait for it to finish, or run concurrent "
            "trainings against an MLflow tracking server (see README, team setup)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"train.py pid {os.getpid()}")
    handle.flush()
    _store_lock = handle  # held until the process exits


@contextmanager
def tracked_run(**kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that always ends: FINISHED, FAILED, or KILLED when interrupted."""
    run = mlflow.start_run(**kwargs)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def redact_url(url: str) -> str:
    """The URL without a password or token, for printing and logging."""
    parts = urlsplit(url)
    if parts.password is None and not re.search(r"(token|key|secret|password)=", parts.query, re.I):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return parts._replace(netloc=f"{user}{host}", query="").geturl()


def git_commit() -> str:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return completed.stdout.strip() + ("-dirty" if dirty else "")


def warehouse_value(warehouse: Path, sql: str) -> str:
    """One value from the warehouse, or "unknown" (an older warehouse without the model)."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        try:
            [(value,)] = connection.execute(sql).fetchall()
        except duckdb.Error:
            return "unknown"
    return str(value)


def data_version(warehouse: Path) -> str:
    return warehouse_value(warehouse, "select data_version from stg_ergast__manifest")


def practice_data_version(warehouse: Path) -> str:
    return warehouse_value(warehouse, "select practice_data_version from stg_f1db__manifest")


def common_tags(config: TrainConfig, data: FeatureData, session: str) -> dict[str, str]:
    return {
        "pitwall.session": session,
        "git_commit": git_commit(),
        "data_version": data_version(config.warehouse),
        "practice_data_version": practice_data_version(config.warehouse),
        "features_sql_sha256": data.spec.sql_sha256,
        "warehouse": str(config.warehouse),
    }


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params({key: str(value)[:MAX_PARAM_LENGTH] for key, value in params.items()})


def log_frame(frame: pd.DataFrame, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path))


@contextmanager
def artifact_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def log_dataset(data: FeatureData, training: pd.DataFrame, name: str) -> None:
    with warnings.catch_warnings():
        # MLflow notes that a local path could be several kinds of source, and that the integer
        # keys cannot hold nulls; both are true and harmless here.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            training[["race_id", "driver_id", "year", "round", data.spec.target, *data.features]],
            source=data.source,
            targets=data.spec.target,
            name=name,
        )
    mlflow.log_input(dataset, context="training")


def log_fold_run(result: FoldResult, parent_params: dict[str, Any]) -> None:
    with tracked_run(run_name=f"fold {result.fold.valid_year}", nested=True):
        log_params(
            {
                "valid_season": result.fold.valid_year,
                "train_seasons": f"{result.fold.train_years[0]}-{result.fold.train_years[-1]}",
                "train_rows": result.train_rows,
                "valid_rows": len(result.predictions),
                **parent_params,
            }
        )
        mlflow.log_metrics({**result.metrics, "fit_seconds": result.seconds})


def log_cv_artifacts(results: list[FoldResult], holdout: FoldResult) -> None:
    """Fold metrics, pooled out-of-fold and holdout predictions, and the plots of one run."""
    pooled = pooled_predictions(results)
    log_frame(fold_table(results), "cv_fold_metrics.csv")
    log_frame(pooled[OOF_COLUMNS], "cv_predictions.csv")
    log_frame(holdout.predictions, "holdout_predictions.csv")
    booster = getattr(holdout.model, "booster", None)
    with artifact_folder() as folder:
        figures = [
            roc_plot(pooled, folder / "roc_curve_cv.png", "ROC, pooled CV predictions"),
            calibration_plot(
                {"CV (pooled)": pooled, f"holdout {holdout.fold.valid_year}": holdout.predictions},
                folder / "calibration.png",
            ),
            distribution_plot(pooled, folder / "probability_by_class_cv.png", "pooled CV"),
        ]
        if booster is not None:
            figures += [
                importance_plot(booster, "split", folder / "importance_split.png"),
                importance_plot(booster, "gain", folder / "importance_gain.png"),
            ]
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="plots")


def log_comparison(results_by_candidate: dict[str, list[FoldResult]], served: str) -> None:
    """Mean Brier per validation season of every candidate, as a table and a plot."""
    table = pd.DataFrame(
        {
            name: {result.fold.valid_year: result.metrics["brier"] for result in results}
            for name, results in results_by_candidate.items()
        }
    ).rename_axis("valid_season")
    log_frame(table.reset_index(), "cv_brier_by_season.csv")
    with artifact_folder() as folder:
        figure = brier_by_season_plot(table, served, folder / "brier_by_season.png")
        mlflow.log_artifact(str(figure), artifact_path="plots")
