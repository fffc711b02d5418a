"""Every dbt unit test, on a warehouse built from empty inputs: no real data needed.

dbt unit tests feed hand-made rows to one model; dbt only needs the model's parents to exist
(for their column types), so the project is built with `--empty` over header-only raw files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripts.load_data import SCHEMAS
from scripts.load_practice import load_practice
from tests.conftest import REPO_ROOT


def dbt(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "--no-use-colors",
            *arguments,
            "--project-dir",
            str(REPO_ROOT / "dbt_project"),
            "--profiles-dir",
            str(REPO_ROOT),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def header_only_inputs(folder: Path) -> dict[str, str]:
    raw = folder / "raw"
    raw.mkdir()
    for table, columns in SCHEMAS.items():
        (raw / f"{table}.csv").write_text(",".join(columns) + "\n", encoding="utf-8")
    (raw / "manifest.json").write_text(
        json.dumps(
            {"data_version": "empty", "source": "none", "loaded_at": "2026-01-01T00:00:00Z"}
        ),
        encoding="utf-8",
    )
    load_practice(None, folder / "practice")
    # An empty entry-list folder: a user's entries/*.csv must not reach the unit tests.
    (folder / "entries").mkdir()
    paths = {
        "PITWALL_RAW_DIR": raw,
        "PITWALL_PRACTICE_DIR": folder / "practice",
        "PITWALL_ENTRIES_DIR": folder / "entries",
    }
    store = folder / "predictions"
    store.mkdir()
    paths["PITWALL_PREDICTIONS_DIR"] = store
    return {name: str(path) for name, path in paths.items()}


def test_every_dbt_unit_test_passes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **header_only_inputs(tmp_path),
        "PITWALL_DUCKDB": str(tmp_path / "empty.duckdb"),
    }
    # One `dbt build --empty`: each model is created with no rows, and its unit tests run right
    # after its parents exist (data tests are left out: there is no data).
    target = tmp_path / "target"
    built = dbt(
        "build", "--empty", "--exclude-resource-type", "test", "--target-path", str(target), env=env
    )
    assert built.returncode == 0, built.stdout[-5000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    unit_tests = [result for result in results if result["unique_id"].startswith("unit_test.")]
    assert len(unit_tests) >= 20
    assert all(result["status"] == "pass" for result in unit_tests)
