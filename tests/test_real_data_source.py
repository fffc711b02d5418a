"""Which real data the tests use: on a user's machine, after `make setup` from the default URL,
the data the loader placed (no ../shared, no variable needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import real_data_source, real_practice_source, shared_source


def placed(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    return folder


def test_the_placed_data_is_used_when_no_source_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PITWALL_DATA_SOURCE", raising=False)
    monkeypatch.delenv("PITWALL_PRACTICE_SOURCE", raising=False)
    monkeypatch.setenv("PITWALL_RAW_DIR", str(placed(tmp_path / "raw")))
    monkeypatch.setenv("PITWALL_PRACTICE_DIR", str(placed(tmp_path / "practice")))
    assert real_data_source() == str(tmp_path / "raw")
    assert real_practice_source() == str(tmp_path / "practice")
    monkeypatch.setenv("PITWALL_DATA_SOURCE", "https://example.org/f1.zip")
    assert real_data_source() == "https://example.org/f1.zip"


def test_without_any_real_data_the_tests_skip_and_ci_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PITWALL_DATA_SOURCE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    nowhere = (tmp_path / "raw", tmp_path / "shared")
    with pytest.raises(pytest.skip.Exception, match="run `make data`"):
        shared_source("PITWALL_DATA_SOURCE", *nowhere, "races.csv")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="no real data"):
        shared_source("PITWALL_DATA_SOURCE", *nowhere, "races.csv")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "races.csv").write_text("raceId\n")
    assert shared_source("PITWALL_DATA_SOURCE", *nowhere, "races.csv") == str(tmp_path / "shared")
