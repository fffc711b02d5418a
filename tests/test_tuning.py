"""Several worker processes share one Optuna study through a journal file, losing nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from models_py.tuning import FINISHED, storage_from_url
from tests.conftest import REPO_ROOT
from tests.helpers import run_train, sqlite_uri

pytestmark = pytest.mark.slow

TRIALS = 6


def test_two_workers_fill_one_study_exactly(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    storage = f"journal:{tmp_path / 'study.log'}"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "train.py",
                "--tune-only",
                "--storage",
                storage,
                "--study-name",
                "shared",
                "--trials",
                str(TRIALS),
                "--window",
                "3",
                "--first-cv-season",
                "2021",
                "--last-cv-season",
                "2023",
                "--test-season",
                "2024",
                "--threads",
                "1",
                "--warehouse",
                str(real_warehouse),
                "--dbt-manifest",
                str(real_manifest),
                "--tracking-uri",
                f"sqlite:///{tmp_path / f'worker{index}.db'}",
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr

    study = optuna.load_study(study_name="shared", storage=storage_from_url(storage))
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == TRIALS
    assert len({trial.number for trial in finished}) == TRIALS
    # Workers draw their own parameters: no setting was evaluated twice.
    assert len({tuple(sorted(trial.params.items())) for trial in finished}) == TRIALS
    # Every finished trial was reported by exactly one worker: none run twice.
    reported = [line for stdout, _ in outputs for line in stdout.splitlines() if "  trial " in line]
    finished_lines = [line for line in reported if "complete" in line or "pruned" in line]
    assert len(finished_lines) == TRIALS


def test_joining_a_study_tuned_for_other_folds_is_refused(
    real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    storage = f"journal:{tmp_path / 'study.log'}"
    common = ["--tune-only", "--storage", storage, "--study-name", "s", "--trials", "1"]
    first = run_train(
        real_warehouse, real_manifest, *common, "--tracking-uri", sqlite_uri(tmp_path / "a")
    )
    assert first.returncode == 0, first.stderr
    other_window = run_train(
        real_warehouse,
        real_manifest,
        *common,
        "--window",
        "2",
        "--tracking-uri",
        sqlite_uri(tmp_path / "b"),
    )
    assert other_window.returncode == 2
    assert "study 's' was tuned for other settings: window '3' here '2'" in other_window.stderr
