"""The optional practice source: validated like the Ergast one, and never required."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.load_data import LoadError
from scripts.load_practice import SCHEMAS, load_practice
from tests.conftest import REPO_ROOT, real_practice_source

PRACTICE_1 = "f1db-races-free-practice-1-results.csv"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "f1db"
    shutil.copytree(real_practice_source(), copy)
    return copy


def edit_line(path: Path, line_number: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line_number - 1]
    lines[line_number - 1] = lines[line_number - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_loads_a_folder_and_a_zip_with_a_manifest(source: Path, tmp_path: Path) -> None:
    manifest = load_practice(str(source), tmp_path / "practice")
    assert set(manifest["tables"]) == set(SCHEMAS)
    assert manifest["tables"][PRACTICE_1]["rows"] > 10_000
    assert len(manifest["data_version"]) == 64
    assert "CC BY 4.0" in manifest["attribution"]
    archive = tmp_path / "f1db-csv.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in source.glob("*.csv"):
            bundle.write(path, path.name)
    from_zip = load_practice(str(archive), tmp_path / "from_zip")
    assert from_zip["data_version"] == manifest["data_version"]


@pytest.mark.parametrize(
    ("file", "line", "old", "new", "message"),
    [
        (
            PRACTICE_1,
            2,
            ",81664,",
            ",81.6x,",
            "line 2 column timeMillis: '81.6x' is not an integer",
        ),
        (PRACTICE_1, 3, '"david-coulthard"', '"nobody"', "line 3 column driverId: 'nobody'"),
        (
            PRACTICE_1,
            3,
            "565,1995,1,2,",
            "565,1995,1,1,",
            "line 3 column raceId, positionDisplayOrder",
        ),
        ("f1db-races.csv", 2, '"1995-03-26"', '"1995-02-30"', "line 2 column date"),
    ],
)
def test_bad_input_names_file_line_and_column_and_keeps_the_old_data(
    source: Path, tmp_path: Path, file: str, line: int, old: str, new: str, message: str
) -> None:
    dest = tmp_path / "practice"
    before = load_practice(str(source), dest)
    edit_line(source / file, line, old, new)
    with pytest.raises(LoadError) as raised:
        load_practice(str(source), dest)
    assert any(error.startswith(file) and message in error for error in raised.value.errors)
    after = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert after["data_version"] == before["data_version"]


def test_a_missing_file_or_column_is_named(source: Path, tmp_path: Path) -> None:
    (source / "f1db-drivers.csv").unlink()
    with pytest.raises(LoadError, match=re.escape("missing file: f1db-drivers.csv")):
        load_practice(str(source), tmp_path / "practice")
    edit_line(source / PRACTICE_1, 1, '"timeMillis"', '"time_ms"')
    with pytest.raises(LoadError) as raised:
        load_practice(str(source), tmp_path / "practice")
    assert f"{PRACTICE_1} line 1: missing column(s) timeMillis" in raised.value.errors


def test_without_a_source_the_build_gets_empty_files_and_loaded_data_is_kept(
    source: Path, tmp_path: Path
) -> None:
    empty = load_practice(None, tmp_path / "none")
    assert empty["data_version"] == "none"
    assert all(entry["rows"] == 0 for entry in empty["tables"].values())
    header = (tmp_path / "none" / PRACTICE_1).read_text(encoding="utf-8")
    assert header.strip() == ",".join(SCHEMAS[PRACTICE_1])
    loaded = load_practice(str(source), tmp_path / "practice")
    kept = load_practice(None, tmp_path / "practice")
    assert kept["data_version"] == loaded["data_version"]


def test_command_line_errors_are_one_line_each(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.load_practice",
            "--source",
            str(tmp_path / "nowhere"),
            "--dest",
            str(tmp_path / "practice"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert "error: practice source not found" in completed.stderr
    assert "left unchanged" in completed.stderr
