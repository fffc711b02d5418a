"""Faults for real: trainings killed mid-way, a dbt build killed mid-way, two trainings at once."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from scripts.build_warehouse import remove_abandoned_builds
from tests.conftest import REPO_ROOT
from tests.helpers import command, quick_train, run, run_predict, run_train, sqlite_uri, start

pytestmark = pytest.mark.slow


def statuses(store: Path) -> list[str]:
    client = MlflowClient(sqlite_uri(store))
    experiment = client.get_experiment_by_name("pitwall-podium")
    return [run.info.status for run in client.search_runs([experiment.experiment_id])]


def champion_version(store: Path) -> str:
    client = MlflowClient(sqlite_uri(store))
    return str(client.get_model_version_by_alias("podium", "champion").version)


def interrupt_when(arguments: list[str], marker: str, signum: int) -> tuple[int, str]:
    """Start a command, send `signum` as soon as a line containing `marker` appears."""
    process = subprocess.Popen(
        arguments, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            process.send_signal(signum)
            break
    _, stderr = process.communicate(timeout=120)
    return process.returncode, "".join(seen) + stderr


@pytest.fixture(scope="module")
def store_with_champion(real_warehouse: Path, real_manifest: Path, tmp_path_factory):
    # In processes of their own: a command run in this process would hold the store's lock
    # until the tests end, and the commands under test would find it busy.
    store = tmp_path_factory.mktemp("faults")
    completed = run_train(real_warehouse, real_manifest, "--tracking-uri", sqlite_uri(store))
    assert completed.returncode == 0, completed.stderr
    return store


@pytest.mark.parametrize(
    ("signum", "name", "extra", "marker", "message"),
    [
        (
            signal.SIGTERM,
            "tune",
            ["--trials", "40"],
            "trial 1/40",
            "interrupted: open MLflow runs marked KILLED; finished trials stay in the study",
        ),
        (
            signal.SIGINT,
            "train",
            ["--no-baselines"],
            "fold  1/2",
            "interrupted: open MLflow runs marked KILLED, no alias moved",
        ),
    ],
    ids=["sigterm-during-tuning", "sigint-during-cv"],
)
def test_interrupted_work_ends_its_runs_and_moves_no_alias(
    signum: int,
    name: str,
    extra: list[str],
    marker: str,
    message: str,
    store_with_champion: Path,
    real_warehouse: Path,
    real_manifest: Path,
    tmp_path: Path,
) -> None:
    store = store_with_champion
    before = champion_version(store)
    arguments = command(
        name,
        real_warehouse,
        real_manifest,
        *extra,
        *(["--storage", str(tmp_path / "study.journal")] if name == "tune" else []),
        "--tracking-uri",
        sqlite_uri(store),
    )
    returncode, output = interrupt_when(arguments, marker, signum)
    assert returncode == 130, output
    assert message in output

    found = statuses(store)
    assert "RUNNING" not in found
    assert "KILLED" in found
    assert champion_version(store) == before

    scored = run_predict(store, real_warehouse, real_manifest)
    assert scored.returncode == 0, scored.stderr
    assert f"podium v{before} (@champion)" in scored.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_dbt_build_leaves_the_previous_warehouse(
    real_warehouse: Path, real_raw_dir: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "pitwall.duckdb"
    shutil.copyfile(real_warehouse, warehouse)
    before = sha256(warehouse)
    process = subprocess.Popen(
        [
            sys.executable,
            "scripts/build_warehouse.py",
            "--warehouse",
            str(warehouse),
            "--raw-dir",
            str(real_raw_dir),
            "--target-path",
            str(tmp_path / "target"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "OK created sql table model main.stg_ergast__results" in line:
            break
    # No chance to clean up: the whole process group dies at once, mid-build.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    assert sha256(warehouse) == before
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("select count(*) from podium_features").fetchone()[0] > 0
    abandoned = list(tmp_path.glob("pitwall.duckdb.building-*"))
    assert abandoned, "the killed build should have left its partial file"
    assert list(tmp_path.glob("target.building-*")), "and its dbt target folder"

    # The next build starts by removing what a dead build left (a live one's files stay).
    remove_abandoned_builds(warehouse, tmp_path / "target")
    assert list(tmp_path.glob("*.building-*")) == []


def test_two_trainings_on_one_sqlite_store(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    def training() -> subprocess.Popen:
        # What is trained does not matter here: a quick one.
        arguments = [*quick_train(), "--tracking-uri", sqlite_uri(tmp_path)]
        return start(command("train", real_warehouse, real_manifest, *arguments))

    first = training()
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("MLflow:"):  # the first training now holds the store
            break
    second = training()
    second_out, second_err = second.communicate(timeout=300)
    _, first_err = first.communicate(timeout=300)

    assert first.returncode == 0, first_err
    assert second.returncode == 3, second_out + second_err
    assert second_err.strip().splitlines() == [second_err.strip()]
    assert "is in use by train.py" in second_err and " pid " in second_err
    with sqlite3.connect(tmp_path / "mlruns.db") as connection:
        assert connection.execute("pragma integrity_check").fetchone() == ("ok",)
    assert set(statuses(tmp_path)) == {"FINISHED"}
    mlflow.set_tracking_uri(sqlite_uri(tmp_path))
    client = MlflowClient()
    versions = client.search_model_versions(max_results=100)
    lgbm_versions = [version for version in versions if version.name == "podium"]
    assert len(lgbm_versions) == 1  # the refused training registered nothing


def test_a_killed_training_leaves_no_run_running(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    """SIGKILL (what the out-of-memory killer sends) gives a process no chance to end its runs:
    the next command on this host ends them FAILED, with a note, and says so."""
    arguments = command(
        "train",
        real_warehouse,
        real_manifest,
        "--no-baselines",
        "--tracking-uri",
        sqlite_uri(tmp_path),
    )
    process = subprocess.Popen(
        arguments, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "fold  1/2" in line:
            process.kill()
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    left = [status for status in statuses(tmp_path) if status == "RUNNING"]
    assert left, "the killed training had no run open"

    # The next command that opens the store (here the quickest: a `tune` with nothing to run).
    completed = run(
        "tune",
        real_warehouse,
        real_manifest,
        "--trials",
        "0",
        "--storage",
        str(tmp_path / "study.journal"),
        "--tracking-uri",
        sqlite_uri(tmp_path),
    )

    assert completed.returncode == 0, completed.stderr
    assert "nothing to run" in completed.stdout
    expected = (
        f"MLflow: {len(left)} run{'s' if len(left) > 1 else ''} left RUNNING by train.py train "
        f"(pid {process.pid}), which no longer runs on this host, ended as FAILED"
    )
    assert expected in completed.stdout
    assert "RUNNING" not in statuses(tmp_path)
    client = MlflowClient(sqlite_uri(tmp_path))
    experiment = client.get_experiment_by_name("pitwall-podium")
    orphans = client.search_runs([experiment.experiment_id], "tags.`pitwall.orphaned` = 'true'")
    assert len(orphans) == len(left)
    for orphan in orphans:
        assert orphan.info.status == "FAILED"
        assert f"pid {process.pid}" in orphan.data.tags["mlflow.note.content"]
