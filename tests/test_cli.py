"""The command line a user meets: subcommands with their own help, `train` by default, and one
exit-code convention (0 ok, 2 bad input or usage, 3 busy, 130 interrupted)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models_py import cli
from models_py.cli import COMMANDS, build_parser, main, parameter
from tests.conftest import REPO_ROOT


def run(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


def test_help_lists_every_command_and_each_has_its_own_help() -> None:
    completed = run("--help")
    assert completed.returncode == 0
    for command in COMMANDS:
        assert command in completed.stdout
    assert "Exit codes: 0 ok, 2 bad input or usage, 3 busy, 130 interrupted" in completed.stdout
    helps = {command: run(command, "--help").stdout for command in COMMANDS}
    assert "--params-from-study" in helps["train"] and "--trials" not in helps["train"]
    assert "--trials" in helps["tune"] and "--worker" in helps["tune"]
    assert "--alias" in helps["predict"] and "--window" not in helps["predict"]
    assert "research" in helps["ablation"].lower()
    assert len(set(helps.values())) == len(COMMANDS)


def test_no_command_means_train(tmp_path: Path) -> None:
    parser = build_parser()
    assert parser.parse_args(["train", "--window", "3"]).window == 3
    # Without a command the arguments are train's, so a missing warehouse is train's error.
    completed = run("--window", "3", "--dbt-manifest", str(tmp_path / "manifest.json"))
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"error: dbt manifest not found at {tmp_path / 'manifest.json'}: "
        "build the warehouse first (make build)"
    )


def test_usage_errors_exit_2() -> None:
    assert run("train", "--window", "ten").returncode == 2
    assert run("dance").returncode == 2
    assert run("train", "--param", "no_equals_sign").returncode == 2


def test_parameters_parse_as_json_values() -> None:
    assert parameter("num_leaves=8") == ("num_leaves", 8)
    assert parameter("learning_rate=0.05") == ("learning_rate", 0.05)
    assert parameter("boosting=dart") == ("boosting", "dart")


def test_predict_without_a_registered_model_is_a_clear_error(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    code = main(["predict", "--tracking-uri", uri, "--model-name", "nothing-here"])
    assert code == 2


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_store_held_by_another_process_exits_3(command: str, tmp_path: Path) -> None:
    import fcntl

    lock = (tmp_path / "mlruns.db.lock").open("a+")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.write("train.py pid 1")
    lock.flush()
    try:
        completed = run(
            command,
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlruns.db'}",
            "--dbt-manifest",
            str(REPO_ROOT / "dbt_project" / "target" / "manifest.json"),
        )
    finally:
        lock.close()
    if "no warehouse" in completed.stderr or "manifest not found" in completed.stderr:
        pytest.skip("needs a built warehouse (make build)")
    assert completed.returncode == 3, completed.stderr
    assert "is in use by train.py pid 1" in completed.stderr


def test_an_interrupt_during_a_store_call_is_raised_once_the_call_is_over() -> None:
    """A KeyboardInterrupt inside SQLAlchemy can leave the SQLite store locked, and the runs
    could then not be ended: the interrupt is delivered a moment later instead; a second one
    at once."""
    store_code: dict = {"__name__": "sqlalchemy.engine.base", "sys": sys}
    exec("def current_frame():\n    return sys._getframe()", store_code)
    in_store_call = store_code["current_frame"]()
    previous = signal.signal(signal.SIGALRM, cli.interrupt)
    try:
        cli.interrupt(signal.SIGTERM, in_store_call)  # deferred, no raise
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            time.sleep(5)  # the re-delivered interrupt lands here, outside the store call
        cli.interrupt(signal.SIGINT, in_store_call)
        with pytest.raises(KeyboardInterrupt, match="signal 2"):
            cli.interrupt(signal.SIGINT, in_store_call)  # asked twice: at once
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        cli._deferred.clear()
    with pytest.raises(KeyboardInterrupt):
        cli.interrupt(signal.SIGINT, sys._getframe())
