"""Small helpers shared by the end-to-end tests: run train.py, read a store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SHORT_SEASONS = [
    "--window",
    "3",
    "--first-cv-season",
    "2022",
    "--last-cv-season",
    "2023",
    "--test-season",
    "2024",
]


def train_command(warehouse: Path, manifest: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        *SHORT_SEASONS,
        "--no-baselines",
        "--warehouse",
        str(warehouse),
        "--dbt-manifest",
        str(manifest),
        *extra,
    ]


def run_train(warehouse: Path, manifest: Path, *extra: str, env: dict | None = None):
    return subprocess.run(
        train_command(warehouse, manifest, *extra),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns.db'}"


def run_predict(
    store: Path, warehouse: Path, manifest: Path, *extra: str
) -> subprocess.CompletedProcess:
    """`train.py predict` against the MLflow store and predictions store in `store`."""
    return subprocess.run(
        [
            sys.executable,
            "train.py",
            "predict",
            "--tracking-uri",
            sqlite_uri(store),
            "--warehouse",
            str(warehouse),
            "--dbt-manifest",
            str(manifest),
            "--store",
            str(store / "predictions"),
            *extra,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
