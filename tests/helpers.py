"""Small helpers shared by the end-to-end tests: run train.py and its commands."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models_py.cli import main
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

# Commands that take no evaluation protocol (no --window and the like).
SEASONLESS = ("predict", "refit", "replay")


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns.db'}"


def command(
    name: str, warehouse: Path, manifest: Path, *extra: str, seasons: bool = True
) -> list[str]:
    return [
        sys.executable,
        "train.py",
        name,
        *(SHORT_SEASONS if seasons else []),
        "--warehouse",
        str(warehouse),
        "--dbt-manifest",
        str(manifest),
        *extra,
    ]


def start(arguments: list[str], env: dict | None = None) -> subprocess.Popen:
    """A command in a process of its own, its output captured as text."""
    return subprocess.Popen(
        arguments, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run(
    name: str, warehouse: Path, manifest: Path, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(name, warehouse, manifest, *extra, seasons=name not in SEASONLESS),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


def quick_train(moment: str = "pre-qualifying") -> list[str]:
    """`train` arguments for a quick training: no baselines, one moment."""
    return ["--no-baselines", "--moment", moment]


def run_train(
    warehouse: Path,
    manifest: Path,
    *extra: str,
    env: dict | None = None,
    moment: str = "pre-qualifying",
) -> subprocess.CompletedProcess:
    """A quick training, in a process of its own."""
    return run("train", warehouse, manifest, *quick_train(moment), *extra, env=env)


def run_predict(
    store: Path, warehouse: Path, manifest: Path, *extra: str
) -> subprocess.CompletedProcess:
    """`train.py predict` against the MLflow store and predictions store in `store`."""
    return run(
        "predict",
        warehouse,
        manifest,
        "--tracking-uri",
        sqlite_uri(store),
        "--store",
        str(store / "predictions"),
        *extra,
    )


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def invoke(name: str, warehouse: Path, manifest: Path, *extra: str) -> Result:
    """A command run in this process (`cli.main`), its output captured: no interpreter start,
    no re-import, for tests that do not need a process of their own."""
    stdout, stderr = io.StringIO(), io.StringIO()
    arguments = command(name, warehouse, manifest, *extra, seasons=name not in SEASONLESS)[2:]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(arguments)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def invoke_train(warehouse: Path, manifest: Path, *extra: str, moment: str = "pre-qualifying"):
    return invoke("train", warehouse, manifest, *quick_train(moment), *extra)


def invoke_predict(store: Path, warehouse: Path, manifest: Path, *extra: str) -> Result:
    return invoke(
        "predict",
        warehouse,
        manifest,
        "--tracking-uri",
        sqlite_uri(store),
        "--store",
        str(store / "predictions"),
        *extra,
    )


@contextlib.contextmanager
def held_for_writing(warehouse: Path) -> Iterator[int]:
    """The warehouse open for writing in another process (as a DuckDB CLI session would hold
    it) for the duration; yields that process's PID."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(120)",
            str(warehouse),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=30)
