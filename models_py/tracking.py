"""Everything written to MLflow: where runs go, what every run records, artifacts and plots.

Importing this module changes nothing; `configure` points MLflow at the store and quiets the
output that would only clutter a training (or print credentials).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import duckdb
import mlflow
import numpy as np
import pandas as pd

from models_py import processes
from models_py.evaluation import FoldResult, fold_table, pooled_predictions
from models_py.features import connect_read_only
from models_py.settings import REPO_ROOT, Locations

if TYPE_CHECKING:
    import matplotlib.figure

MAX_PARAM_LENGTH = 6000
OOF_COLUMNS = [
    "race_id",
    "driver_id",
    "year",
    "round",
    "probability",
    "win_probability",
    "points_probability",
    "actual",
]
CALIBRATION_BINS = 10


class StoreBusyError(RuntimeError):
    """Another process holds the local SQLite store."""


def connect(locations: Locations) -> None:
    """Point MLflow at the store, without the output that would only clutter a command."""
    # Per-file download bars for small JSON files are noise in the output; MLflow's "View run
    # at <tracking URI>" links would print credentials (ours are redacted).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Keys are integers and features floats by design; MLflow's hint about integer columns that
    # cannot hold missing values does not apply.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    mlflow.set_tracking_uri(locations.tracking_uri)


def configure(locations: Locations, experiment: str) -> str:
    """Connect, end the runs killed processes left RUNNING (and say so), and make the
    experiment (created if new) the active one."""
    connect(locations)
    report_orphaned_runs()
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        artifact_location = None
        if urlsplit(locations.tracking_uri).scheme in ("sqlite", "file", ""):
            # A local store keeps artifacts beside it, one folder per experiment, as
            # `mlflow server --default-artifact-root ./mlartifacts` would.
            folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
            artifact_location = (locations.artifact_root / folder).resolve().as_uri()
        try:
            mlflow.create_experiment(experiment, artifact_location=artifact_location)
        except mlflow.exceptions.MlflowException:
            # Workers started together on a new server race to create it: one wins.
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
    return mlflow.set_experiment(experiment).experiment_id


_store_locks: dict[Path, object] = {}


def lock_local_store(tracking_uri: str, holder: str) -> None:
    """Refuse at once, clearly, when another process is writing the same SQLite store.

    SQLite serializes writers; two long trainings interleaving hundreds of writes would meet
    `database is locked` somewhere in the middle. A tracking server is the engine for
    concurrent work; the embedded default stays one writer at a time. The lock is held until
    the process exits.
    """
    if urlsplit(tracking_uri).scheme != "sqlite":
        return
    database = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0]).resolve()
    if database in _store_locks:
        return
    lock_path = database.with_name(database.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "another process"
        handle.close()
        raise StoreBusyError(
            f"{tracking_uri} is in use by {other}: wait for it to finish, or run concurrent "
            "work against an MLflow tracking server (docs/team.md)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{holder} pid {os.getpid()}")
    handle.flush()
    _store_locks[database] = handle


# Who started a run: a process that dies without ending its runs (SIGKILL, out of memory) is
# recognised by the next command on the same machine, which ends them.
HOST_TAG = "pitwall.host"
MACHINE_TAG = "pitwall.machine"
PROCESS_TAG = "pitwall.process"
COMMAND_TAG = "pitwall.command"
NOTE_TAG = "mlflow.note.content"


def process_tags() -> dict[str, str]:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]).strip()
    return {
        HOST_TAG: socket.gethostname(),
        MACHINE_TAG: processes.this_machine(),
        PROCESS_TAG: processes.identity(),
        COMMAND_TAG: command or "python",
    }


def left_by_dead_process(tags: dict[str, str]) -> bool:
    """Made by a process of this machine that no longer exists."""
    return processes.left_by_dead_process(tags.get(MACHINE_TAG), tags.get(PROCESS_TAG))


def start_run(**kwargs: Any) -> mlflow.ActiveRun:
    """mlflow.start_run, recording this host and process on a new run."""
    if "run_id" not in kwargs:
        kwargs["tags"] = {**process_tags(), **(kwargs.get("tags") or {})}
    return mlflow.start_run(**kwargs)


def end_orphaned_runs() -> list[str]:
    """End FAILED the runs left RUNNING by processes of this machine that no longer exist
    (killed with SIGKILL, or by the out-of-memory killer, they could not end their runs), each
    with a note saying so. Returns one line per process whose runs were ended."""
    client = mlflow.MlflowClient()
    machine = processes.this_machine()
    if not re.fullmatch(r"[\w./-]+", machine):
        return []  # a name the filter syntax cannot quote safely
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    if not experiments:
        return []
    running = client.search_runs(
        experiments,
        f"attributes.status = 'RUNNING' and tags.`{MACHINE_TAG}` = '{machine}'",
        max_results=1000,
    )
    ended: dict[tuple[str, str], list[str]] = {}
    for run in running:
        if not left_by_dead_process(run.data.tags):
            continue
        pid = run.data.tags[PROCESS_TAG].split(":", 1)[0]
        command = run.data.tags.get(COMMAND_TAG, "a pitwall command")
        note = (
            f"Ended FAILED by {process_tags()[COMMAND_TAG]} (pid {os.getpid()}): the process "
            f"that ran it ({command}, pid {pid} on {socket.gethostname()}) no longer exists; it "
            "was killed (SIGKILL, out of memory) before it could end its runs."
        )
        previous = run.data.tags.get(NOTE_TAG)
        client.set_tag(run.info.run_id, NOTE_TAG, f"{previous}\n\n{note}" if previous else note)
        client.set_tag(run.info.run_id, "pitwall.orphaned", "true")
        client.set_terminated(run.info.run_id, "FAILED")
        ended.setdefault((command, pid), []).append(run.info.run_name or run.info.run_id)
    return [
        f"{len(names)} run{'s' if len(names) > 1 else ''} left RUNNING by {command} (pid {pid}), "
        f"which no longer runs on this host, ended as FAILED: {', '.join(sorted(names)[:5])}"
        + (" …" if len(names) > 5 else "")
        for (command, pid), names in ended.items()
    ]


def report_orphaned_runs() -> None:
    for line in end_orphaned_runs():
        print(f"MLflow: {line}", flush=True)


@contextmanager
def tracked_run(**kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that always ends: FINISHED, FAILED, or KILLED when interrupted."""
    run = start_run(**kwargs)
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
    with connect_read_only(warehouse) as connection:
        try:
            [(value,)] = connection.execute(sql).fetchall()
        except duckdb.Error:
            return "unknown"
    return str(value)


def data_versions(warehouse: Path) -> dict[str, str]:
    return {
        "data_version": warehouse_value(warehouse, "select data_version from stg_ergast__manifest"),
        "practice_data_version": warehouse_value(
            warehouse, "select practice_data_version from stg_f1db__manifest"
        ),
    }


def common_tags(warehouse: Path, sql_sha256: str, session: str) -> dict[str, str]:
    return {
        "pitwall.session": session,
        "git_commit": git_commit(),
        **data_versions(warehouse),
        "features_sql_sha256": sql_sha256,
        "warehouse": str(warehouse),
    }


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params({key: str(value)[:MAX_PARAM_LENGTH] for key, value in params.items()})


@contextmanager
def artifact_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def log_frame(frame: pd.DataFrame, name: str, artifact_path: str | None = None) -> None:
    with artifact_folder() as folder:
        path = folder / name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_dataset(frame: pd.DataFrame, source: str, target: str, name: str) -> None:
    with warnings.catch_warnings():
        # MLflow notes that a local path could be several kinds of source, and that the integer
        # keys cannot hold nulls; both are true and harmless here.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=source, targets=target, name=name)
    mlflow.log_input(dataset, context="training")


def log_fold_runs(results: list[FoldResult], parent_params: dict[str, Any]) -> None:
    """One nested run per CV fold, for the served candidate."""
    for result in results:
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


def log_trial_run(study: Any, trial: Any) -> None:
    """An Optuna callback: each finished trial as a run nested in the study's run (its
    parameters, its mean fold Brier, its state). optuna-integration's MLflowCallback did this
    and is deprecated."""
    tags = {"pitwall.role": "trial", "optuna.study_name": study.study_name}
    with start_run(run_name=f"trial {trial.number}", nested=True, tags=tags):
        log_params({**trial.params, "trial_number": trial.number, "state": trial.state.name})
        if trial.value is not None:
            mlflow.log_metric("cv_brier", trial.value)


def log_fold_metrics(results: list[FoldResult]) -> None:
    """Per-fold metrics as steps of the candidate's own run (no nested runs), in one call."""
    from mlflow.entities import Metric

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log fold metrics inside a run")
    stamp = int(time.time() * 1000)
    metrics = [
        Metric(f"fold_{name}", float(value), stamp, result.fold.valid_year)
        for result in results
        for name, value in result.metrics.items()
    ]
    mlflow.MlflowClient().log_batch(run.info.run_id, metrics=metrics)


def log_cv_artifacts(results: list[FoldResult], holdout: FoldResult) -> None:
    """Fold metrics, pooled out-of-fold and holdout predictions, and the plots of one run."""
    pooled = pooled_predictions(results)
    log_frame(fold_table(results), "cv_fold_metrics.csv")
    log_frame(pooled[OOF_COLUMNS], "cv_predictions.csv")
    log_frame(holdout.predictions, "holdout_predictions.csv")
    booster = getattr(holdout.model, "booster", None)
    race_model = getattr(holdout.model, "race_model", None)
    with artifact_folder() as folder:
        figures = [
            roc_plot(pooled, folder / "roc_curve_cv.png", "ROC, pooled CV predictions"),
            calibration_plot(
                {"CV (pooled)": pooled, f"holdout {holdout.fold.valid_year}": holdout.predictions},
                folder / "calibration.png",
            ),
            distribution_plot(pooled, folder / "probability_by_class_cv.png", "pooled CV"),
        ]
        if race_model is not None:
            # A blend's LightGBM is the `lgbm` run's, whose importances that run plots.
            figures.append(coefficient_plot(race_model, folder / "race_model_coefficients.png"))
        elif booster is not None:
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


# Plots: figures people would rather look at than read.


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: matplotlib.figure.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path


def roc_plot(predictions: pd.DataFrame, path: Path, title: str) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    false_positive, true_positive, _ = roc_curve(predictions["actual"], predictions["probability"])
    auc = roc_auc_score(predictions["actual"], predictions["probability"])
    figure, axes = pyplot().subplots(figsize=(5.5, 5))
    axes.plot(false_positive, true_positive, label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    return save_figure(figure, path)


def calibration_plot(samples: dict[str, pd.DataFrame], path: Path) -> Path:
    """Reliability diagram per sample, with the number of rows in each probability bin."""
    from sklearn.calibration import calibration_curve

    figure, (curve_axes, count_axes) = pyplot().subplots(
        2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1.4]}, sharex=True
    )
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    width = 0.9 / CALIBRATION_BINS / max(len(samples), 1)
    for index, (label, frame) in enumerate(samples.items()):
        observed, predicted = calibration_curve(
            frame["actual"], frame["probability"], n_bins=CALIBRATION_BINS, strategy="uniform"
        )
        curve_axes.plot(predicted, observed, marker="o", label=label)
        counts, _ = np.histogram(frame["probability"], bins=edges)
        positions = edges[:-1] + width * (index + 0.5)
        bars = count_axes.bar(positions, counts, width=width, align="center", label=label)
        count_axes.bar_label(bars, fontsize=6)
    curve_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    curve_axes.set(ylabel="observed podium share", title="calibration")
    curve_axes.legend(loc="upper left")
    count_axes.set(xlabel="predicted probability", ylabel="rows per bin", yscale="log")
    return save_figure(figure, path)


def importance_plot(booster: Any, kind: str, path: Path) -> Path:
    importance = pd.Series(
        booster.feature_importance(importance_type=kind), index=booster.feature_name()
    ).sort_values()
    figure, axes = pyplot().subplots(figsize=(7, 0.28 * len(importance) + 1.2))
    axes.barh(importance.index, importance.to_numpy())
    label = "number of splits" if kind == "split" else "total gain"
    axes.set(xlabel=label, title=f"feature importance by {kind}")
    axes.tick_params(axis="y", labelsize=8)
    return save_figure(figure, path)


def coefficient_plot(race_model: Any, path: Path, largest: int = 30) -> Path:
    """The race model's largest coefficients (per standard deviation of each input)."""
    coefficients = pd.Series(race_model.coefficients, index=race_model.encoding.names())
    shown = coefficients[coefficients.abs().sort_values().index[-largest:]]
    figure, axes = pyplot().subplots(figsize=(7, 0.28 * len(shown) + 1.2))
    colours = ["tab:blue" if value > 0 else "tab:red" for value in shown]
    axes.barh(shown.index, shown.to_numpy(), color=colours)
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set(
        xlabel="score per standard deviation (blue: stronger in the race)",
        title=f"race model: the {len(shown)} largest of {len(coefficients)} coefficients",
    )
    axes.tick_params(axis="y", labelsize=8)
    return save_figure(figure, path)


def distribution_plot(predictions: pd.DataFrame, path: Path, title: str) -> Path:
    figure, axes = pyplot().subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    for actual, label in ((0, "no podium"), (1, "podium")):
        values = predictions.loc[predictions["actual"] == actual, "probability"]
        axes.hist(values, bins=bins, alpha=0.6, density=True, label=f"{label} (n={len(values)})")
    axes.set(xlabel="predicted podium probability", ylabel="density", title=title)
    axes.legend()
    return save_figure(figure, path)


def brier_by_season_plot(table: pd.DataFrame, highlight: str, path: Path) -> Path:
    """Mean Brier per validation season (rows) for each candidate (columns), lower is better."""
    figure, axes = pyplot().subplots(figsize=(9, 5))
    for name in table.columns:
        emphasis = {"linewidth": 2.6, "zorder": 3} if name == highlight else {"linewidth": 1.1}
        axes.plot(table.index, table[name], marker="o", markersize=3, label=name, **emphasis)
    axes.set(
        xlabel="validation season",
        ylabel="mean Brier (lower is better)",
        title=f"Brier per CV season: {highlight} (bold) against every other candidate",
    )
    axes.legend(fontsize=8, ncol=2)
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def study_plots(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimization history, parameter importances, parallel coordinates and slices."""
    pyplot()
    from optuna.visualization import matplotlib as optuna_plots

    plotters = {
        "optimization_history": optuna_plots.plot_optimization_history,
        "param_importances": optuna_plots.plot_param_importances,
        "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
        "slice": optuna_plots.plot_slice,
    }
    saved = []
    for name, plot in plotters.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as error:
                print(f"  (no {name} plot: {error})")
                continue
        figure = np.ravel(axes)[0].figure if isinstance(axes, np.ndarray) else axes.figure
        figure.set_size_inches(11, 6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tight_layout and Optuna's axes
            saved.append(save_figure(figure, folder / f"study_{name}.png"))
    return saved
