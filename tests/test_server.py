"""Team scale on real servers: PostgreSQL (pgserver, a real server on a Unix socket), an
`mlflow server` on it over loopback HTTP, `train.py` against the server, and two `tune` workers
sharing one Optuna study in PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from models_py.features import load_feature_spec, read_features
from models_py.serving import model_features, served_input
from tests.conftest import REPO_ROOT
from tests.helpers import command, run_train

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-token"


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
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        deadline = time.monotonic() + 15
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(process.pid), "mlflow server processes left running"


@pytest.fixture(scope="module")
def trained_on_server(server, real_warehouse: Path, real_manifest: Path):
    url, _ = server
    # Credentials in the URI must reach the server but never a param, a tag or the output.
    secret_url = url.replace("http://", f"http://pitwall:{SECRET}@")
    env = dict(os.environ, MLFLOW_TRACKING_URI=secret_url)
    completed = run_train(real_warehouse, real_manifest, env=env)
    assert completed.returncode == 0, completed.stderr
    mlflow.set_tracking_uri(url)
    return completed, MlflowClient(url)


def test_runs_artifacts_and_registry_over_http(
    trained_on_server, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    _, client = trained_on_server
    experiment = client.get_experiment_by_name("pitwall-podium")
    runs = client.search_runs([experiment.experiment_id])
    # The served candidate (the podium model or its challenger, whichever won on CV).
    [parent] = [run for run in runs if run.data.tags.get("pitwall.served") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")

    downloaded = Path(
        client.download_artifacts(parent.info.run_id, "cv_fold_metrics.csv", tmp_path)
    )
    assert downloaded.read_text().startswith("valid_season,")

    champion = client.get_model_version_by_alias("podium", "champion")
    assert champion.tags["training_run_id"] == parent.info.run_id
    # The champion, loaded over HTTP in one call, turns the upcoming race into probabilities
    # summing to 3.
    pyfunc = mlflow.pyfunc.load_model("models:/podium@champion")
    features = model_features(pyfunc)
    upcoming = read_features(
        real_warehouse, load_feature_spec(real_manifest), features, where="f.is_upcoming"
    ).frame
    probability = np.asarray(pyfunc.predict(served_input(upcoming, features)))
    assert len(probability) == 20
    assert np.all((probability > 0) & (probability < 1))
    assert probability.sum() == pytest.approx(3.0)


def test_no_secret_is_logged_or_printed(trained_on_server) -> None:
    completed, client = trained_on_server
    assert SECRET not in completed.stdout + completed.stderr
    experiment = client.get_experiment_by_name("pitwall-podium")
    for run in client.search_runs([experiment.experiment_id]):
        logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert SECRET not in logged


def test_two_tune_workers_share_one_study_in_postgresql(
    server, postgres: dict[str, str], real_warehouse: Path, real_manifest: Path
) -> None:
    url, _ = server
    env = dict(os.environ, MLFLOW_TRACKING_URI=url)
    arguments = [
        "--worker",
        "--storage",
        postgres["optuna"],
        "--study-name",
        "team",
        "--trials",
        "2",
        "--workers",
        "1",
    ]
    workers = [
        subprocess.Popen(
            command("tune", real_warehouse, real_manifest, *arguments),
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    study = optuna.load_study(study_name="team", storage=postgres["optuna"])
    finished = [trial for trial in study.trials if trial.state.is_finished()]
    assert len(finished) == 4
    assert len({tuple(sorted(trial.params.items())) for trial in finished}) == 4
    # Both workers' runs went to the one tracking server.
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("pitwall-podium")
    studies = client.search_runs([experiment.experiment_id], "tags.`pitwall.role` = 'study'")
    assert len(studies) == 2
