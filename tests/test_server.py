"""Team scale on real servers, as docs/team.md sets it up: PostgreSQL (pgserver, a real server
on a Unix socket), an `mlflow server` on it with `--serve-artifacts` over loopback HTTP;
`train.py` and `predict` against it; two trainings at once; `tune` workers sharing one Optuna
study in PostgreSQL, one of them killed mid-trial."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import sqlalchemy.exc
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.helpers import command, quick_train, run, run_train, start

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-token"
# What the concurrent trainings test needs is two registrations at once, not a long CV.
ONE_FOLD = ["--first-cv-season", "2023", "--last-cv-season", "2023"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} did not answer within {timeout} s")


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    """A PostgreSQL server with a database for MLflow and one for Optuna."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    try:
        for database in ("mlflow", "optuna"):
            server.psql(f"create database {database};")
        yield {
            database: server.get_uri(database).replace("postgresql://", "postgresql+psycopg2://")
            for database in ("mlflow", "optuna")
        }
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def server(postgres: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            postgres["mlflow"],
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "server.log").open("w"),
        start_new_session=True,  # its own process group, so every worker can be stopped
    )
    try:
        wait_until_up(url, process)
        yield url, folder
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            # A graceful stop waits for idle keep-alive connections; a test server need not.
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        deadline = time.monotonic() + 15
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(process.pid), "mlflow server processes left running"


@pytest.fixture(scope="module")
def trained_on_server(server, real_warehouse: Path, real_manifest: Path):
    """`python train.py` (both moments, baselines; a short protocol) against the server."""
    url, _ = server
    # Credentials in the URI must reach the server but never a param, a tag or the output.
    secret_url = url.replace("http://", f"http://pitwall:{SECRET}@")
    env = dict(os.environ, MLFLOW_TRACKING_URI=secret_url)
    completed = run("train", real_warehouse, real_manifest, env=env)
    assert completed.returncode == 0, completed.stderr
    mlflow.set_tracking_uri(url)
    return completed, MlflowClient(url)


def test_runs_artifacts_and_registry_over_http(
    trained_on_server, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    _, client = trained_on_server
    experiment = client.get_experiment_by_name("pitwall-podium")
    runs = client.search_runs([experiment.experiment_id])
    served = [run for run in runs if run.data.tags.get("pitwall.served") == "true"]
    assert len(served) == 2  # one per moment
    for parent in served:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 2  # a run per CV fold
        assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    downloaded = Path(
        client.download_artifacts(served[0].info.run_id, "cv_fold_metrics.csv", tmp_path)
    )
    assert downloaded.read_text().startswith("valid_season,")
    assert {run.info.status for run in runs} == {"FINISHED"}
    for name in ("podium", "podium-post-qualifying"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["training_run_id"] in {run.info.run_id for run in served}


def test_predict_over_http(
    server, trained_on_server, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    url, _ = server
    completed = run(
        "predict",
        real_warehouse,
        real_manifest,
        "--store",
        str(tmp_path / "predictions"),
        env=dict(os.environ, MLFLOW_TRACKING_URI=url),
    )
    assert completed.returncode == 0, completed.stderr
    assert "podium v1 (@champion)" in completed.stdout
    [stored] = list((tmp_path / "predictions").rglob("*.parquet"))
    forecast = pd.read_parquet(stored)
    assert len(forecast) == 20
    assert forecast["podium_probability"].sum() == pytest.approx(3.0)


def test_no_secret_is_logged_or_printed(trained_on_server) -> None:
    completed, client = trained_on_server
    assert SECRET not in completed.stdout + completed.stderr
    experiment = client.get_experiment_by_name("pitwall-podium")
    for run_ in client.search_runs([experiment.experiment_id]):
        logged = " ".join([*run_.data.params.values(), *run_.data.tags.values()])
        assert SECRET not in logged


def test_two_trainings_at_once_keep_every_run_and_version(
    server, real_warehouse: Path, real_manifest: Path
) -> None:
    """Both finish with runs of their own; both versions are registered; the champion moves
    once (the second model is as good as the first, not better)."""
    url, _ = server
    env = dict(os.environ, MLFLOW_TRACKING_URI=url)
    name = "podium-pair"
    arguments = command(
        "train", real_warehouse, real_manifest, *quick_train(), "--model-name", name, *ONE_FOLD
    )
    trainings = [start(arguments, env) for _ in range(2)]
    outputs = [training.communicate(timeout=600) for training in trainings]
    for training, (stdout, stderr) in zip(trainings, outputs, strict=True):
        assert training.returncode == 0, stdout + stderr

    client = MlflowClient(url)
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(version.version) for version in versions) == [1, 2]
    promoted = [version for version in versions if version.tags["promoted"] == "true"]
    assert [version.version for version in promoted] == ["1"]
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    second = client.get_model_version(name, "2")
    assert second.tags["champion_version_compared"] == "1"
    assert "does not beat champion v1" in second.tags["decision"]
    # Two separate served runs, each behind its own version, all finished.
    runs = {version.tags["training_run_id"] for version in versions}
    assert len(runs) == 2
    for run_id in runs:
        assert client.get_run(run_id).info.status == "FINISHED"


def running_trial_of(study: optuna.Study, pid: int) -> optuna.trial.FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker", "").endswith(f" pid {pid}"):
            return trial
    return None


def test_tune_workers_share_a_study_and_survive_a_killed_worker(
    server, postgres: dict[str, str], real_warehouse: Path, real_manifest: Path
) -> None:
    """Two workers each queue 3 trials of one study in PostgreSQL and run the queue together;
    one is killed (SIGKILL) in the middle of a trial. The other fails that trial once its
    heartbeats stop, runs it again, and the study ends with exactly the 6 trials requested;
    the killed worker's MLflow run does not stay RUNNING. Their experiment is new: both create
    it at once."""
    url, _ = server
    env = dict(os.environ, MLFLOW_TRACKING_URI=url)
    storage = postgres["optuna"]
    arguments = command(
        "tune",
        real_warehouse,
        real_manifest,
        "--worker",
        "--trials",
        "3",
        "--experiment",
        "pitwall-team",
        "--storage",
        storage,
        "--study-name",
        "team",
        "--heartbeat",
        "2",
        "--workers",
        "1",
    )
    survivor, victim = start(arguments, env), start(arguments, env)
    try:
        deadline = time.monotonic() + 300
        victims_trial, reader = None, None
        while victims_trial is None:
            assert time.monotonic() < deadline, "the second worker never started a trial"
            assert victim.poll() is None, victim.communicate()
            time.sleep(0.2)
            # Opened once the workers have created Optuna's schema and the study.
            with contextlib.suppress(KeyError, sqlalchemy.exc.SQLAlchemyError):
                reader = reader or optuna.storages.RDBStorage(storage)
                study = optuna.load_study(study_name="team", storage=reader)
                victims_trial = running_trial_of(study, victim.pid)
        time.sleep(0.5)  # well inside the trial, its heartbeat recorded
        victim.kill()
        victim.wait(timeout=30)
        stdout, stderr = survivor.communicate(timeout=600)
    finally:
        for process in (survivor, victim):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert survivor.returncode == 0, stdout + stderr

    study = optuna.load_study(study_name="team", storage=storage)
    states = [trial.state for trial in study.trials]
    finished = states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED)
    print(  # the figures of the closing note: `pytest tests/test_server.py -s -k killed`
        f"\nrequested 6; finished {finished}, failed {states.count(TrialState.FAIL)} (re-run), "
        f"running {states.count(TrialState.RUNNING)}, queued {states.count(TrialState.WAITING)}"
    )
    assert finished == 6
    assert states.count(TrialState.RUNNING) == states.count(TrialState.WAITING) == 0
    [failed] = [trial for trial in study.trials if trial.state == TrialState.FAIL]
    assert failed.number == victims_trial.number
    [rerun] = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed.number]
    assert rerun.state.is_finished() and rerun.params == failed.params
    assert (
        f"trial {failed.number} ({failed.user_attrs['worker']}) sent no heartbeat for 8 s: "
        "failed, and queued again with the same parameters"
    ) in stdout
    # Both workers' study runs went to the one tracking server; none is left RUNNING.
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("pitwall-team")
    studies = client.search_runs([experiment.experiment_id], "tags.`pitwall.role` = 'study'")
    assert len(studies) == 2
    assert "RUNNING" not in {
        run_.info.status for run_ in client.search_runs([experiment.experiment_id])
    }
    [orphan] = [run_ for run_ in studies if run_.info.status == "FAILED"]
    assert f"pid {victim.pid}" in orphan.data.tags["mlflow.note.content"]
    assert f"left RUNNING by train.py tune (pid {victim.pid})" in stdout

    # docs/team.md's next step: train with the study's best trial, from PostgreSQL.
    trained = run_train(
        real_warehouse,
        real_manifest,
        "--model-name",
        "podium-tuned",
        "--params-from-study",
        "team",
        "--storage",
        storage,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    assert "best of study team" in trained.stdout
    assert client.get_model_version("podium-tuned", "1").tags["study_name"] == "team"
