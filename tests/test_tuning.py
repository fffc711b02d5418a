"""The study: named after its protocol, resumable, pruned on folds, and the very CV protocol
training runs (same parameters, same mean Brier)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy.exc
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from models_py import processes, tuning
from models_py.evaluation import CrossValidation
from models_py.folds import window_before
from models_py.models import DEFAULT_LGBM_PARAMS
from models_py.settings import Protocol
from tests.conftest import REPO_ROOT
from tests.helpers import invoke, invoke_train, sqlite_uri
from tests.synthetic import synthetic_table


def test_study_names_follow_the_protocol_and_a_mismatch_is_refused() -> None:
    name = tuning.study_name(Protocol(), "abcdef0123456789")
    assert name == "podium-pre-qualifying-w10-cv2001-2024-cal5-abcdef0123"
    assert tuning.study_name(Protocol(window=8), "abcdef0123456789") != name
    study = optuna.create_study(study_name="s")
    recorded = tuning.study_protocol(Protocol(), "sha", "pre_qualifying")
    tuning.check_protocol(study, recorded)
    tuning.check_protocol(study, recorded)
    with pytest.raises(tuning.StudyError, match="window '10' here '3'"):
        tuning.check_protocol(
            study, tuning.study_protocol(Protocol(window=3), "sha", "pre_qualifying")
        )


def test_a_new_study_first_tries_the_served_defaults_and_a_resumed_one_does_not(
    tmp_path: Path,
) -> None:
    storage = f"journal:{tmp_path / 's.journal'}"
    recorded = tuning.study_protocol(Protocol(), "sha", "pre_qualifying")
    study = tuning.open_study(storage, "s", recorded, seed=0)
    tuning.plan(study, 1)
    tuning.run_queue(study, lambda trial: len(tuning.search_space(trial)), [])
    [first] = study.trials
    assert first.params == DEFAULT_LGBM_PARAMS
    resumed = tuning.open_study(storage, "s", recorded, seed=0)
    tuning.plan(resumed, 1)
    tuning.run_queue(resumed, lambda trial: len(tuning.search_space(trial)), [])
    assert [trial.state for trial in resumed.trials] == [TrialState.COMPLETE] * 2
    assert resumed.trials[1].params != DEFAULT_LGBM_PARAMS


def sampled(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


# The test plays a worker with ask() outside optimize, which Optuna warns about.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_workers_run_exactly_the_queued_trials(tmp_path: Path) -> None:
    """Optuna's ask would create a trial when the queue is empty; here it stops the worker, so a
    study planned for N trials ends with N whatever the number of workers."""
    study = tuning.open_study(f"sqlite:///{tmp_path / 's.db'}", "s", {}, seed=0, worker=True)
    tuning.plan(study, 3, worker=True)
    assert tuning.queued(study) == 3
    tuning.run_queue(study, sampled, [])
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 3
    with pytest.raises(tuning.QueueEmpty):
        study.ask()


# The test plays a worker with ask() outside optimize, which Optuna warns about.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_whose_worker_died_is_queued_again_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker killed mid-trial stops sending heartbeats: the worker still running fails that
    trial after the grace period, Optuna queues a copy with the same parameters, and it runs.
    A trial whose worker died before its first heartbeat (or that an earlier pitwall left) has
    none to miss: it is given up after the grace too."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = tuning.open_study(url, "s", {}, seed=0, worker=True, heartbeat=1)
    tuning.plan(study, 3, worker=True)
    # The dead worker, on another machine: it took a queued trial, drew its parameters, beat
    # once, and died.
    dead = study.ask()
    dead.set_user_attr("worker", "host pid 1")
    dead.set_user_attr("worker_machine", "elsewhere")
    x = dead.suggest_float("x", 0, 1)
    study._storage.record_heartbeat(dead._trial_id)
    # One taken from the queue by a worker that died at once: no worker, no heartbeat.
    unclaimed = study.ask()

    tuning.run_queue(study, sampled, [], grace=4, poll_seconds=0.5)

    states = [trial.state for trial in study.trials]
    assert states.count(TrialState.COMPLETE) == 3
    assert states.count(TrialState.FAIL) == 2
    assert states.count(TrialState.RUNNING) == states.count(TrialState.WAITING) == 0
    [rerun] = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert rerun.state == TrialState.COMPLETE
    assert rerun.params == {"x": x}
    [taken] = [t for t in study.trials if t.system_attrs.get("failed_trial") == unclaimed.number]
    assert taken.state == TrialState.COMPLETE
    output = capsys.readouterr().out
    assert "waiting for 2 trial(s) running in other workers" in output
    assert (
        f"trial {dead.number} (host pid 1) sent no heartbeat for 4 s: failed, and queued again "
        "with the same parameters"
    ) in output
    assert (
        f"trial {unclaimed.number} (no worker) was left running by a worker that is gone: "
        "failed, and queued again with the same parameters"
    ) in output


# The test plays a worker with ask() outside optimize, which Optuna warns about.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_left_by_a_dead_local_worker_runs_again_from_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal file has no heartbeat: a `tune` killed mid-trial on this machine leaves its
    trial RUNNING, and the next `tune` sees its process is gone and runs it again."""
    study = tuning.open_study(f"journal:{tmp_path / 's.journal'}", "s", {}, seed=0)
    tuning.plan(study, 2)
    killed = study.ask()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    killed.set_user_attr("worker", f"here pid {gone.stdout.strip()}")
    killed.set_user_attr("worker_machine", processes.this_machine())
    killed.set_user_attr("worker_process", f"{gone.stdout.strip()}:1")
    killed.suggest_float("x", 0, 1)

    tuning.run_queue(study, sampled, [])

    states = [trial.state for trial in study.trials]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 1
    assert f"trial {killed.number} (here pid {gone.stdout.strip()}) was left running" in (
        capsys.readouterr().out
    )


def test_storages_default_to_the_journal_file_in_the_repository(tmp_path: Path) -> None:
    default = tuning.storage_from_url(None)
    assert isinstance(default, optuna.storages.JournalStorage)
    assert tuning.dashboard_storage(None) == str(REPO_ROOT / "optuna.journal")
    rdb = tuning.storage_from_url(f"sqlite:///{tmp_path / 'studies.db'}")
    assert isinstance(rdb, optuna.storages.RDBStorage)
    journal = tuning.storage_from_url(f"journal:{tmp_path / 's.journal'}")
    assert isinstance(journal, optuna.storages.JournalStorage)


def test_workers_racing_to_create_the_schema_open_the_storage_once_it_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    def opened_by_the_third_attempt(url: str, **_heartbeat: object) -> str:
        attempts.append(url)
        if len(attempts) < 3:
            raise sqlalchemy.exc.IntegrityError("CREATE TYPE studydirection", {}, Exception())
        return "storage"

    monkeypatch.setattr(tuning, "QueuedTrialsOnlyRDB", opened_by_the_third_attempt)
    monkeypatch.setattr(tuning.time, "sleep", lambda _seconds: None)
    assert tuning.rdb_storage("postgresql://u@db/optuna") == "storage"
    assert len(attempts) == 3
    attempts.clear()
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        tuning.rdb_storage("postgresql://u@db/optuna", attempts=2)
    assert len(attempts) == 2


def test_progress_prints_one_line_per_trial(capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study()
    values = iter([0.09, 0.07, 0.08])
    study.optimize(lambda trial: next(values), n_trials=3, callbacks=[tuning.Progress(3)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  trial 1/3 · 0.0900 · best 0.0900 (trial 0) · ETA ")
    assert lines[1].startswith("  trial 2/3 · 0.0700 · best 0.0700 (trial 1) · ETA ")
    assert lines[2] == "  trial 3/3 · 0.0800 · best 0.0700 (trial 1) · done"


def test_the_wilcoxon_pruner_stops_trials_that_are_worse_on_the_same_folds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def small_space(trial: optuna.Trial) -> dict:
        # The real space's shape with few rounds, so that a trial takes a moment.
        return {
            "n_estimators": trial.suggest_int("n_estimators", 5, 40),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 2, 16),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 60),
        }

    monkeypatch.setattr(tuning, "search_space", small_space)
    table = synthetic_table(first=1990, last=2010)
    cv = CrossValidation(table, ("pace",), 2, 2, 1, workers=2)
    folds = [window_before(season, 2) for season in range(1995, 2011)]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3), pruner=tuning.pruner())
    study.optimize(tuning.Objective(cv, folds), n_trials=15)
    states = [trial.state for trial in study.trials]
    assert TrialState.PRUNED in states
    pruned = [trial for trial in study.trials if trial.state == TrialState.PRUNED]
    assert all(
        tuning.PRUNER_STARTUP_STEPS <= trial.user_attrs["folds_evaluated"] < len(folds)
        for trial in pruned
    )


@pytest.mark.slow
def test_tune_resumes_its_study_and_train_reproduces_its_brier(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    storage = str(tmp_path / "study.journal")
    common = ["--storage", storage, "--tracking-uri", sqlite_uri(tmp_path)]
    first = invoke("tune", real_warehouse, real_manifest, "--trials", "2", *common)
    assert first.returncode == 0, first.stderr
    second = invoke("tune", real_warehouse, real_manifest, "--trials", "2", *common)
    assert second.returncode == 0, second.stderr
    assert ": 2 trials so far; 2 added to its queue, 2 queued" in second.stdout
    assert "  trial 2/2 · " in second.stdout
    [name] = optuna.get_all_study_names(tuning.storage_from_url(storage))
    assert name.startswith("podium-pre-qualifying-w3-cv2022-2023-cal5-")
    study = optuna.load_study(study_name=name, storage=tuning.storage_from_url(storage))
    assert len(study.trials) == 4
    assert f"train.py train --params-from-study {name}" in second.stdout

    # The same parameters through `train` give the same mean CV Brier: one protocol.
    trained = invoke_train(real_warehouse, real_manifest, "--params-from-study", *common)
    assert trained.returncode == 0, trained.stderr
    client = MlflowClient(sqlite_uri(tmp_path))
    experiment = client.get_experiment_by_name("pitwall-podium")
    runs = client.search_runs([experiment.experiment_id])
    [served] = [found for found in runs if found.data.tags.get("pitwall.role") == "lgbm"]
    assert served.data.metrics["cv_brier_mean"] == pytest.approx(study.best_value, abs=1e-12)
    assert f"best of study {name}" in trained.stdout
    # Each tune call is one MLflow run with a nested run per trial.
    studies = [found for found in runs if found.data.tags.get("pitwall.role") == "study"]
    assert len(studies) == 2
    for parent in studies:
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(trials) == 2
    mlflow.set_tracking_uri(sqlite_uri(tmp_path))


@pytest.mark.slow
def test_a_study_tuned_for_other_folds_is_refused(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    common = ["--storage", str(tmp_path / "s.journal"), "--study-name", "s", "--trials", "1"]
    first = invoke(
        "tune", real_warehouse, real_manifest, *common, "--tracking-uri", sqlite_uri(tmp_path)
    )
    assert first.returncode == 0, first.stderr
    other = invoke(
        "tune",
        real_warehouse,
        real_manifest,
        *common,
        "--window",
        "2",
        "--tracking-uri",
        sqlite_uri(tmp_path / "b"),
    )
    assert other.returncode == 2
    assert "study 's' was tuned for other settings: window '3' here '2'" in other.stderr
