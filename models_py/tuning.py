"""The Optuna study: LightGBM parameters that minimise the mean fold Brier of the served model.

Each trial runs the very CV protocol training runs (`CrossValidation.run`, whose fold datasets
are built once per process and reused by every trial), reporting each fold's Brier to Optuna's
Wilcoxon pruner, which stops a trial once it is significantly worse than the best one on the
same folds. Studies live in an Optuna storage (by default the journal file `optuna.journal` in
the repository root), named after the protocol they tune for, so a second `tune` resumes and
adds trials, and `train --params-from-study` reads the best one back.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from models_py import processes
from models_py.evaluation import CrossValidation, FoldResult
from models_py.features import PRE_QUALIFYING
from models_py.folds import Fold
from models_py.models import DEFAULT_LGBM_PARAMS, podium_recipe
from models_py.settings import (
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_STUDY_STORAGE,
    REPO_ROOT,
    Protocol,
)

PRUNER_P_THRESHOLD = 0.1
PRUNER_STARTUP_STEPS = 6
# Heartbeats of a trial's worker (RDB storages): a trial silent for HEARTBEAT_GRACE intervals is
# failed and queued again, at most MAX_REQUEUES times (a trial that kills every worker it runs
# on, e.g. out of memory, is not retried for ever).
HEARTBEAT_SECONDS = DEFAULT_HEARTBEAT_SECONDS
HEARTBEAT_GRACE = 4
MAX_REQUEUES = 2


class StudyError(RuntimeError):
    """A study cannot be used: missing, empty, or tuned for another protocol."""


def study_name(protocol: Protocol, sql_sha256: str, moment: str = PRE_QUALIFYING) -> str:
    """Named after what its Brier values depend on: folds, window, calibration, feature SQL."""
    return (
        f"podium-{moment.replace('_', '-')}-w{protocol.window}"
        f"-cv{protocol.first_cv_season}-{protocol.last_cv_season}"
        f"-cal{protocol.calibration_seasons}-{sql_sha256[:10]}"
    )


def study_protocol(protocol: Protocol, sql_sha256: str, moment: str) -> dict[str, str]:
    return {
        "moment": moment,
        "cv_valid_seasons": f"{protocol.first_cv_season}-{protocol.last_cv_season}",
        "window": str(protocol.window),
        "calibration_seasons": str(protocol.calibration_seasons),
        "features_sql_sha256": sql_sha256,
    }


class QueueEmpty(Exception):
    """The study has no queued trial left for this worker to take."""


class QueuedTrialsOnlyRDB(RDBStorage):
    """Optuna's RDB storage, in which a worker runs only queued trials: those `plan` enqueued
    and those the heartbeat re-queued after their worker died. Optuna's `ask` creates a new
    trial when the queue is empty; here it raises QueueEmpty instead, so workers sharing a
    study stop at exactly the planned number of trials, whoever ran them."""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> Any:
        if template_trial is None:
            raise QueueEmpty
        return super()._create_new_trial(study_id, template_trial)


class QueuedTrialsOnlyJournal(JournalStorage):
    """The journal-file storage with the same rule (see QueuedTrialsOnlyRDB)."""

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None:
            raise QueueEmpty
        return super().create_new_trial(study_id, template_trial)


class Requeue(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a trial whose worker stopped sending heartbeats (killed, out of memory,
    machine lost): the trial is failed and a copy with the same parameters queued, and the
    worker that noticed says so."""

    def __init__(self, grace_seconds: int, max_retry: int) -> None:
        super().__init__(max_retry=max_retry)
        self.grace_seconds = grace_seconds

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        worker = trial.user_attrs.get("worker", "a worker")
        print(
            f"  trial {trial.number} ({worker}) sent no heartbeat for {self.grace_seconds} s: "
            "failed, and queued again with the same parameters",
            flush=True,
        )
        super().__call__(study, trial)


def is_rdb_url(url: str | None) -> bool:
    return url is not None and "://" in url and not url.startswith("journal:")


def heartbeat_grace(url: str | None, heartbeat: int = HEARTBEAT_SECONDS) -> int | None:
    """Seconds after which a silent trial is failed and queued again; None for a journal file,
    which has no heartbeat."""
    return heartbeat * HEARTBEAT_GRACE if is_rdb_url(url) else None


def storage_from_url(url: str | None, heartbeat: int = HEARTBEAT_SECONDS) -> Any:
    """The study storage: by default the journal file `optuna.journal` in the repository root;
    else a journal file (`journal:PATH`, or a path without `://`) or an RDB URL
    (`sqlite:///…`, `postgresql://…`). An RDB storage gets Optuna's heartbeat: a trial whose
    worker sends none for HEARTBEAT_GRACE heartbeats is failed and queued again."""
    if url is None:
        return QueuedTrialsOnlyJournal(JournalFileBackend(str(REPO_ROOT / DEFAULT_STUDY_STORAGE)))
    if is_rdb_url(url):
        return rdb_storage(url, heartbeat)
    path = Path(url.removeprefix("journal:")).expanduser().resolve()
    return QueuedTrialsOnlyJournal(JournalFileBackend(str(path)))


def rdb_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS, attempts: int = 5) -> Any:
    """Optuna's RDB storage with heartbeats. Workers started together on an empty PostgreSQL
    database race to create Optuna's schema and all but one get a duplicate-key error from
    PostgreSQL's catalog; once the winner has created it, opening the storage again succeeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        options = {
            "heartbeat_interval": heartbeat,
            "grace_period": heartbeat * HEARTBEAT_GRACE,
            "heartbeat_stale_trial_callback": Requeue(heartbeat * HEARTBEAT_GRACE, MAX_REQUEUES),
        }
        for attempt in range(1, attempts):
            try:
                return QueuedTrialsOnlyRDB(url, **options)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                time.sleep(0.2 * attempt)
        return QueuedTrialsOnlyRDB(url, **options)


def dashboard_storage(url: str | None) -> str:
    """What to hand `optuna-dashboard` to browse the same studies."""
    if url is None:
        return str(REPO_ROOT / DEFAULT_STUDY_STORAGE)
    if is_rdb_url(url):
        return url
    return str(Path(url.removeprefix("journal:")).expanduser().resolve())


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """Strong regularisation (few leaves, many rows per leaf, L1/L2, bagging) and few rounds
    at a moderate rate: the cost of a trial is its number of rounds."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 500, step=25),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.15, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 48),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 400),
        "subsample": trial.suggest_float("subsample", 0.4, 1.0),
        # Bagging only happens with a frequency; without it `subsample` would be ignored.
        "subsample_freq": trial.suggest_int("subsample_freq", 1, 10),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 30.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }


WORKER = f"{socket.gethostname()} pid {os.getpid()}"


@dataclass
class Objective:
    """Mean fold Brier of the served probabilities over the CV folds, one fold per step."""

    cv: CrossValidation
    folds: list[Fold]
    moment: str = PRE_QUALIFYING
    features: tuple[str, ...] | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        features = self.features or self.cv.features
        trial.set_user_attr("worker", WORKER)
        trial.set_user_attr("worker_machine", processes.this_machine())
        trial.set_user_attr("worker_process", processes.identity())
        recipe = podium_recipe(features, search_space(trial), moment=self.moment)
        briers: list[float] = []

        def report(result: FoldResult) -> None:
            briers.append(result.metrics["brier"])
            trial.report(result.metrics["brier"], result.fold.valid_year)
            trial.set_user_attr("folds_evaluated", len(briers))
            # After the last fold the trial is complete whatever the test says.
            if len(briers) < len(self.folds) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after {len(briers)} folds")

        self.cv.run(recipe, self.folds, on_result=report)
        return float(np.mean(briers))


@dataclass
class Progress:
    """One line per finished trial: `trial 12/50 · 0.0761 · best 0.0756 (trial 9) · ETA 4 min`."""

    trials: int
    started: float = field(default_factory=time.perf_counter)
    done: int = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        if trial.state == TrialState.COMPLETE:
            outcome = f"{trial.value:.4f}"
        elif trial.state == TrialState.PRUNED:
            outcome = f"pruned after {trial.user_attrs.get('folds_evaluated', '?')} folds"
        else:
            outcome = trial.state.name.lower()
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no complete trial yet"
        elapsed = time.perf_counter() - self.started
        remaining = elapsed / self.done * (self.trials - self.done)
        if self.done >= self.trials:
            eta = "done"
        elif remaining < 60:
            eta = f"ETA {math.ceil(remaining)} s"
        else:
            eta = f"ETA {math.ceil(remaining / 60)} min"
        print(f"  trial {self.done}/{self.trials} · {outcome} · {best} · {eta}", flush=True)


def pruner() -> optuna.pruners.BasePruner:
    """Optuna's Wilcoxon pruner, made for a mean over instances such as CV folds: a trial stops
    once it is significantly worse than the best trial on the folds both have seen. (The median
    pruner compares a trial's best running mean with other trials' current one, which hardly
    ever fires on a running mean of fold Briers.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(
            p_threshold=PRUNER_P_THRESHOLD, n_startup_steps=PRUNER_STARTUP_STEPS
        )


def open_study(
    storage: str | None,
    name: str,
    protocol: dict[str, str],
    seed: int,
    worker: bool = False,
    create: bool = True,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> optuna.Study:
    """Create or resume the named study; refuse one that tuned for another protocol.

    A resumed study continues from its own history: the sampler is seeded with the seed plus
    the trials it already holds, so each call explores new points. Several processes running
    trials at once (`worker`) seed by process; TPE's constant liar keeps workers from sampling
    where another one's trial is running.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = storage_from_url(storage, heartbeat)
    if not create:
        try:
            study = optuna.load_study(study_name=name, storage=backend)
        except KeyError:
            raise StudyError(f"no study {name!r} in {storage or DEFAULT_STUDY_STORAGE}") from None
        check_protocol(study, protocol)
        return study
    study = optuna.create_study(
        study_name=name,
        storage=backend,
        direction="minimize",
        pruner=pruner(),
        load_if_exists=True,
    )
    check_protocol(study, protocol)
    offset = os.getpid() if worker else len(study.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.TPESampler(seed=seed + offset, constant_liar=worker)
    return study


def plan(study: optuna.Study, trials: int, worker: bool = False) -> None:
    """Queue `trials` trials in the study; their parameters are drawn by whichever worker runs
    them. A new study's first is what training serves (not when workers start together: each
    would find the study empty)."""
    if trials > 0 and not worker and not study.trials:
        start_from_defaults(study)
        trials -= 1
    for _ in range(trials):
        study.enqueue_trial({})


def start_from_defaults(study: optuna.Study) -> None:
    """A new study's first trial is what training serves: its best is never worse, and the
    pruner has a strong reference from the start."""
    if not study.trials:
        study.enqueue_trial(dict(DEFAULT_LGBM_PARAMS), skip_if_exists=True)


def queued(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_queue(
    study: optuna.Study,
    objective: Objective,
    callbacks: list[Any],
    grace: int | None = None,
    poll_seconds: float | None = None,
) -> None:
    """Run the study's queued trials until none is queued and none runs anywhere. A worker that
    finds the queue empty while other workers' trials run waits for them: should one of those
    workers die, its trial goes back to the queue after `grace` seconds without a heartbeat
    (Optuna checks for silent trials before each trial it starts) and this worker runs it.
    Without heartbeats (`grace` None, a journal file) it does not wait for other workers."""
    said = False
    while True:
        requeue_abandoned(study, grace)
        try:
            with contextlib.suppress(QueueEmpty):
                study.optimize(objective, callbacks=callbacks, gc_after_trial=False)
        except AssertionError as error:
            # Optuna's way of saying that this worker's trial was failed by another one while
            # it ran: its heartbeats stopped for longer than the grace (a machine that slept, a
            # database that failed over), and a copy is queued.
            if "Should not reach" not in str(error):
                raise
            print(
                "  a trial of this worker was failed and queued again by another one (this one "
                "missed its heartbeats); going on",
                flush=True,
            )
            continue
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running or grace is None:
            return
        if not said:
            print(
                f"  queue empty; waiting for {len(running)} trial(s) running in other workers "
                f"(one whose worker died is queued again after {grace} s)",
                flush=True,
            )
            said = True
        time.sleep(poll_seconds or max(1.0, grace / HEARTBEAT_GRACE))


# A trial that never reached the objective (its worker died right after taking it from the
# queue, or an earlier version of pitwall left it) carries no worker and, on an RDB storage, no
# heartbeat either; Optuna would leave it RUNNING for ever. Seconds after its start after which
# it is given up, when no heartbeat grace applies.
UNCLAIMED_SECONDS = 120


def abandoned(trial: FrozenTrial, grace: int | None) -> bool:
    """A RUNNING trial no worker will finish: never claimed by an objective for longer than the
    grace, or (journal file, no heartbeats) run by a process of this machine that is gone."""
    if "worker_machine" not in trial.user_attrs:
        started = trial.datetime_start or datetime.datetime.now()
        age = (datetime.datetime.now() - started).total_seconds()
        return age > (grace or UNCLAIMED_SECONDS)
    if grace is not None:
        return False  # heartbeats decide
    return processes.left_by_dead_process(
        trial.user_attrs["worker_machine"], trial.user_attrs.get("worker_process")
    )


def requeue_abandoned(study: optuna.Study, grace: int | None) -> None:
    """Fail the abandoned RUNNING trials and queue a copy of each, as the heartbeat does."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not abandoned(trial, grace):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker got there first
        worker = trial.user_attrs.get("worker", "no worker")
        print(
            f"  trial {trial.number} ({worker}) was left running by a worker that is gone: "
            "failed, and queued again with the same parameters",
            flush=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_REQUEUES)
        retry(study, study.trials[trial.number])


def check_protocol(study: optuna.Study, protocol: dict[str, str]) -> None:
    """Record what the study tunes for; refuse one that tuned for something else: Brier values
    from other folds or other feature definitions are not comparable."""
    recorded = study.user_attrs.get("protocol")
    if recorded is None:
        study.set_user_attr("protocol", protocol)
        return
    differences = [
        f"{key} {recorded.get(key)!r} here {value!r}"
        for key, value in protocol.items()
        if recorded.get(key) != value
    ]
    if differences:
        raise StudyError(
            f"study {study.study_name!r} was tuned for other settings: " + "; ".join(differences)
        )


def best_params(study: optuna.Study) -> dict[str, Any]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial to take parameters from"
        )
    return dict(study.best_trial.params)
