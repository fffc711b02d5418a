"""A real `mlflow server` on loopback, a real `python train.py` against it over HTTP."""

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
import pytest
from mlflow.tracking import MlflowClient

from models_py import onnx_export
from models_py.dataset import load_feature_spec, read_features
from tests.helpers import run_train

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
def server(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
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
    completed = run_train(real_warehouse, real_manifest, "--trials", "2", env=env)
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

    champion = client.get_model_version_by_alias("podium-lgbm", "champion")
    assert champion.run_id == parent.info.run_id
    onnx_model = mlflow.onnx.load_model("models:/podium-lgbm-onnx@champion")
    data = read_features(real_warehouse, load_feature_spec(real_manifest))
    rows = data.frame.loc[data.frame["is_upcoming"], data.features]
    raw = onnx_export.predict(onnx_export.session(onnx_model), rows)
    assert len(raw) == 20 and np.all(np.isfinite(raw))
    # The served pyfunc, over HTTP too, turns the race into probabilities summing to 3.
    pyfunc = mlflow.pyfunc.load_model("models:/podium-lgbm@champion")
    upcoming = data.frame.loc[data.frame["is_upcoming"], ["race_id", *data.features]]
    probability = np.asarray(pyfunc.predict(upcoming))
    assert np.all((probability > 0) & (probability < 1))
    assert probability.sum() == pytest.approx(3.0)


def test_no_secret_is_logged_or_printed(trained_on_server) -> None:
    completed, client = trained_on_server
    assert SECRET not in completed.stdout + completed.stderr
    experiment = client.get_experiment_by_name("pitwall-podium")
    for run in client.search_runs([experiment.experiment_id]):
        logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert SECRET not in logged
