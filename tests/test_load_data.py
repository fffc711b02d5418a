"""Tests for scripts/load_data.py: real data loads; bad input never touches the raw folder."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from scripts import load_data
from scripts.load_data import REQUIRED, LoadError, load, read_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "f1"
requires_real_data = pytest.mark.skipif(
    not (REAL_DATA / "races.csv").is_file(),
    reason=f"real F1 data not found at {REAL_DATA} (read-only shared folder)",
)

# --- a minimal valid dataset, same headers and quoting style as the real files ---------------

_SESSIONS = ",".join(
    f"{s}_{p}" for s in ("fp1", "fp2", "fp3", "quali", "sprint") for p in ("date", "time")
)
_NO_SESSIONS = ",".join([r"\N"] * 10)

MINI: dict[str, list[str]] = {
    "circuits": [
        "circuitId,circuitRef,name,location,country,lat,lng,alt,url",
        '1,"albert_park","Albert Park Grand Prix Circuit","Melbourne","Australia",'
        '-37.8497,144.968,10,"http://en.wikipedia.org/wiki/Albert_Park"',
        '2,"bahrain","Bahrain International Circuit","Sakhir","Bahrain",'
        '26.0325,50.5106,7,"http://en.wikipedia.org/wiki/Bahrain"',
    ],
    "constructors": [
        "constructorId,constructorRef,name,nationality,url",
        '1,"mclaren","McLaren","British","http://en.wikipedia.org/wiki/McLaren"',
        '9,"red_bull","Red Bull","Austrian","http://en.wikipedia.org/wiki/Red_Bull"',
    ],
    "drivers": [
        "driverId,driverRef,number,code,forename,surname,dob,nationality,url",
        '1,"hamilton",44,"HAM","Lewis","Hamilton","1985-01-07","British","http://x/ham"',
        '830,"max_verstappen",33,"VER","Max","Verstappen","1997-09-30","Dutch","http://x/ver"',
        '846,"norris",\\N,\\N,"Lando","Norris","1999-11-13","British","http://x/nor"',
    ],
    "status": ["statusId,status", '1,"Finished"', '11,"+1 Lap"', '130,"Collision damage"'],
    "races": [
        f"raceId,year,round,circuitId,name,date,time,url,{_SESSIONS}",
        f'1,2024,1,2,"Bahrain Grand Prix","2024-03-02","15:00:00","http://x/r1",{_NO_SESSIONS}',
        '2,2024,2,1,"Australian Grand Prix","2024-03-24",\\N,"http://x/r2",'
        '"2024-03-22","01:30:00","2024-03-22","05:00:00","2024-03-23","01:30:00",'
        '"2024-03-23","05:00:00",\\N,\\N',
        # Like the real 2025 rows: unquoted and without the ten session columns.
        "3,2025,1,1,Australian Grand Prix,2025-03-16,04:00:00,http://x/r3",
    ],
    "results": [
        "resultId,raceId,driverId,constructorId,number,grid,position,positionText,positionOrder,"
        "points,laps,time,milliseconds,fastestLap,rank,fastestLapTime,fastestLapSpeed,statusId",
        "1,1,830,9,1,1,1,1,1,26,57,1:31:44.742,5504742,39,1,1:32.608,210.383,1",
        "2,1,846,1,4,7,2,2,2,18,57,+22.457,5527199,40,3,1:33.000,209.0,1",
        "3,1,1,1,44,9,\\N,R,3,0,40,\\N,\\N,30,5,1:34.000,\\N,130",
        "4,2,846,1,4,2,1,1,1,25,58,1:20:26.843,4826843,51,2,1:20.000,215.0,1",
        "5,2,830,9,1,1,2,2,2,18,58,+2.366,4829209,45,1,1:19.813,216.0,1",
        "6,2,1,1,44,3,3,3,3,15.5,57,\\N,\\N,50,3,1:20.100,214.0,11",
    ],
    "sprint_results": [
        "resultId,raceId,driverId,constructorId,number,grid,position,positionText,positionOrder,"
        "points,laps,time,milliseconds,fastestLap,fastestLapTime,statusId,rank",
        "1,2,830,9,1,1,1,1,1,8,19,30:00.000,1800000,5,1:35.000,1,1",
        "2,2,846,1,4,2,2,2,2,7,19,+1.000,1801000,6,1:35.100,1,2",
        "3,2,1,1,44,3,\\N,R,3,0,5,\\N,\\N,4,1:36.000,130,\\N",
    ],
    "qualifying": [
        "qualifyId,raceId,driverId,constructorId,number,position,q1,q2,q3",
        '1,1,830,9,1,1,"1:30.031","1:29.374","1:29.179"',
        '2,1,846,1,4,2,"1:30.500","1:29.900","1:29.500"',
        '3,1,1,1,44,3,"1:31.000",\\N,\\N',
    ],
    "driver_standings": [
        "driverStandingsId,raceId,driverId,points,position,positionText,wins",
        "1,1,830,26,1,1,1",
        "2,1,846,18,2,2,0",
        "3,1,1,0,3,3,0",
        "4,2,830,44,1,1,1",
        "5,2,846,43,2,2,1",
        "6,2,1,15.5,\\N,D,0",
    ],
    "constructor_standings": [
        "constructorStandingsId,raceId,constructorId,points,position,positionText,wins",
        "1,1,9,26,1,1,1",
        "2,1,1,18,2,2,0",
        "3,2,9,44,2,2,1",
        "4,2,1,58.5,1,1,1",
    ],
}


def write_mini(folder: Path) -> Path:
    """Write the valid mini dataset (plus files the loader must ignore) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in MINI.items():
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "seasons.csv").write_text("year,url\n2024,x\n", encoding="utf-8")
    (folder / "README.md").write_text("not a table\n", encoding="utf-8")
    return folder


def edit_line(folder: Path, file: str, line: int, change: Callable[[str], str]) -> None:
    """Apply `change` to 1-based `line` of `file`, keeping every other byte as it was."""
    path = folder / file
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = change(lines[line - 1])
    path.write_text("\n".join(lines), encoding="utf-8")


def set_field(folder: Path, file: str, line: int, index: int, value: str) -> None:
    def change(text: str) -> str:
        fields = text.split(",")
        fields[index] = value
        return ",".join(fields)

    edit_line(folder, file, line, change)


def snapshot(dest: Path) -> dict[str, str]:
    """sha256 of every file in dest (manifest included), plus what sits beside dest."""
    state = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.iterdir()}
    state["<siblings>"] = ",".join(sorted(os.listdir(dest.parent)))
    return state


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    return write_mini(tmp_path / "src")


@pytest.fixture
def loaded(tmp_path: Path, mini: Path) -> Path:
    """A raw folder holding a good load of the mini dataset, alone in its parent folder."""
    dest = tmp_path / "out" / "raw"
    load(str(mini), dest)
    return dest


# --- the mini dataset -------------------------------------------------------------------------


def test_mini_dataset_loads(loaded: Path, mini: Path) -> None:
    manifest = read_manifest(loaded)
    assert sorted(manifest["tables"]) == sorted(REQUIRED)
    assert sorted(p.name for p in loaded.iterdir()) == sorted(
        [f"{n}.csv" for n in REQUIRED] + ["manifest.json"]
    )
    assert manifest["source"] == str(mini)
    assert manifest["tables"]["results"]["rows"] == 6
    races = csv_rows(loaded / "races.csv")
    assert {len(r) for r in races} == {18}
    assert races[3][8:] == [r"\N"] * 10
    for name, entry in manifest["tables"].items():
        assert entry["sha256"] == sha256_file(loaded / f"{name}.csv")
        assert entry["source_sha256"] == sha256_file(mini / f"{name}.csv")
    assert os.listdir(loaded.parent) == ["raw"]


def test_written_files_are_plain_utf8_with_lf(loaded: Path) -> None:
    data = (loaded / "drivers.csv").read_bytes()
    assert b"\r" not in data
    assert data.endswith(b"\n")
    assert data.splitlines()[3] == rb"846,norris,\N,\N,Lando,Norris,1999-11-13,British,http://x/nor"


def test_a_new_driver_without_a_url_loads(loaded: Path, mini: Path) -> None:
    # A driver named mid-season reaches the feed before his Wikipedia page does.
    with (mini / "drivers.csv").open("a", encoding="utf-8") as handle:
        handle.write('861,"colapinto",43,"COL","Franco","Colapinto","2003-05-27","Argentine",\\N\n')
    manifest = load(str(mini), loaded)
    assert manifest["tables"]["drivers"]["rows"] == 4
    assert csv_rows(loaded / "drivers.csv")[-1] == [
        *("861", "colapinto", "43", "COL", "Franco", "Colapinto", "2003-05-27", "Argentine"),
        r"\N",
    ]


# (file, line, field index, column): read by no dbt model beyond staging, so a null is fine.
UNUSED_COLUMNS = [
    ("circuits.csv", 2, 8, "url"),
    ("circuits.csv", 2, 3, "location"),
    ("circuits.csv", 2, 5, "lat"),
    ("circuits.csv", 2, 6, "lng"),
    ("constructors.csv", 2, 3, "nationality"),
    ("constructors.csv", 2, 4, "url"),
    ("races.csv", 2, 7, "url"),
    ("results.csv", 2, 7, "positionText"),
    ("results.csv", 2, 10, "laps"),
    ("sprint_results.csv", 2, 10, "laps"),
    ("driver_standings.csv", 2, 6, "wins"),
    ("constructor_standings.csv", 2, 5, "positionText"),
    ("qualifying.csv", 2, 4, "number"),
]


@pytest.mark.parametrize(
    ("file", "line", "index"),
    [
        pytest.param(file, line, index, id=f"{file}-{column}")
        for file, line, index, column in UNUSED_COLUMNS
    ],
)
def test_unused_columns_accept_a_null(
    loaded: Path, mini: Path, file: str, line: int, index: int
) -> None:
    set_field(mini, file, line, index, r"\N")
    load(str(mini), loaded)
    assert csv_rows(loaded / file)[line - 1][index] == r"\N"


@pytest.mark.parametrize(
    ("file", "line", "index", "column"),
    [
        ("drivers.csv", 2, 7, "nationality"),
        ("drivers.csv", 2, 6, "dob"),
        ("circuits.csv", 2, 1, "circuitRef"),
        ("circuits.csv", 2, 4, "country"),
        ("races.csv", 2, 4, "name"),
        ("results.csv", 2, 9, "points"),
    ],
)
def test_columns_the_features_read_stay_required(
    loaded: Path, mini: Path, file: str, line: int, index: int, column: str
) -> None:
    set_field(mini, file, line, index, r"\N")
    with pytest.raises(LoadError) as info:
        load(str(mini), loaded)
    assert info.value.errors == [rf"{file} line {line}, column {column}: null (\N) not allowed"]


def test_crlf_and_bom_are_normalised(tmp_path: Path, mini: Path) -> None:
    for path in mini.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    manifest = load(str(mini), tmp_path / "raw")
    reference = load(str(write_mini(tmp_path / "plain")), tmp_path / "raw2")
    assert manifest["data_version"] == reference["data_version"]
    assert (
        manifest["tables"]["races"]["source_sha256"]
        != reference["tables"]["races"]["source_sha256"]
    )


# --- bad input: each case corrupts one thing in a previously good source ---------------------


def _delete(file: str) -> Callable[[Path], None]:
    return lambda folder: (folder / file).unlink()


def _semicolons(folder: Path) -> None:
    path = folder / "races.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")


def _truncate_results(folder: Path) -> None:
    # As if the download stopped mid-row: the last row ends after "57," with no newline.
    path = folder / "results.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.rindex(r"\N,\N")], encoding="utf-8")


def _truncate_in_quotes(folder: Path) -> None:
    path = folder / "circuits.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("Bahrain International") + 7], encoding="utf-8")


def _latin1_driver(folder: Path) -> None:
    path = folder / "drivers.csv"
    path.write_bytes(path.read_bytes().replace(b'"Max"', '"M\u00e4x"'.encode("latin-1")))


def _second_races_file(folder: Path) -> None:
    (folder / "sub").mkdir()
    shutil.copy(folder / "races.csv", folder / "sub" / "races.csv")


BAD_CASES = [
    pytest.param(
        _delete("qualifying.csv"),
        "missing file: qualifying.csv (looked in {src})",
        id="missing-file",
    ),
    pytest.param(
        lambda f: edit_line(f, "races.csv", 1, lambda s: s.replace(",date,", ",race_date,")),
        "races.csv: missing column 'date'",
        id="missing-column",
    ),
    pytest.param(
        _semicolons,
        "races.csv: header has 1 column; expected comma-separated with columns raceId, year, "
        "round, circuitId, name, date, time, url, fp1_date, fp1_time, fp2_date, fp2_time, "
        "fp3_date, fp3_time, quali_date, quali_time, sprint_date, sprint_time",
        id="wrong-delimiter",
    ),
    pytest.param(
        lambda f: (f / "status.csv").write_text("id,name\n1,Finished\n", encoding="utf-8"),
        "status.csv: header has none of the expected columns; expected Ergast-format columns "
        "statusId, status; found id, name",
        id="other-export-format",
    ),
    pytest.param(
        _truncate_results, "results.csv line 7: 12 fields, header has 18", id="truncated-file"
    ),
    pytest.param(
        _truncate_in_quotes,
        "circuits.csv line 3: malformed CSV (unexpected end of data); file truncated?",
        id="truncated-inside-quotes",
    ),
    pytest.param(
        lambda f: set_field(f, "results.csv", 4, 0, "2"),
        "results.csv line 4, column resultId: duplicate id 2 (first at line 3)",
        id="duplicate-id",
    ),
    pytest.param(
        lambda f: set_field(f, "races.csv", 3, 2, "1"),
        "races.csv line 3, columns year, round: duplicate (2024, 1) (first at line 2)",
        id="duplicate-year-round",
    ),
    pytest.param(
        lambda f: set_field(f, "results.csv", 3, 1, "99"),
        "results.csv line 3, column raceId: 99 not found in races.csv",
        id="unknown-race",
    ),
    pytest.param(
        lambda f: set_field(f, "sprint_results.csv", 2, 15, "7"),
        "sprint_results.csv line 2, column statusId: 7 not found in status.csv",
        id="unknown-status",
    ),
    pytest.param(
        lambda f: set_field(f, "races.csv", 3, 5, '"2024-02-30"'),
        "races.csv line 3, column date: '2024-02-30' is not a valid date (YYYY-MM-DD)",
        id="impossible-date",
    ),
    pytest.param(
        lambda f: set_field(f, "races.csv", 2, 6, '"25:00:00"'),
        "races.csv line 2, column time: '25:00:00' is not a valid time (HH:MM:SS)",
        id="impossible-time",
    ),
    pytest.param(
        lambda f: set_field(f, "results.csv", 5, 1, "2x"),
        "results.csv line 5, column raceId: '2x' is not an integer",
        id="non-integer-id",
    ),
    pytest.param(
        lambda f: set_field(f, "circuits.csv", 2, 5, "south"),
        "circuits.csv line 2, column lat: 'south' is not a number",
        id="non-numeric-float",
    ),
    pytest.param(
        lambda f: set_field(f, "results.csv", 2, 5, r"\N"),
        r"results.csv line 2, column grid: null (\N) not allowed",
        id="null-in-required-column",
    ),
    pytest.param(
        lambda f: set_field(f, "status.csv", 3, 1, ""),
        r"status.csv line 3, column status: empty value (nulls must be written as \N)",
        id="empty-value",
    ),
    pytest.param(
        lambda f: edit_line(f, "results.csv", 6, lambda s: s + ",7"),
        "results.csv line 6: 19 fields, header has 18",
        id="extra-field",
    ),
    pytest.param(
        lambda f: edit_line(f, "races.csv", 4, lambda s: ",".join(s.split(",")[:5])),
        "races.csv line 4: 5 fields, header has 18",
        id="races-row-shorter-than-8",
    ),
    pytest.param(
        lambda f: edit_line(f, "status.csv", 3, lambda s: s.split(",")[0]),
        "status.csv line 3: 1 field, header has 2",
        id="short-row-outside-races",
    ),
    pytest.param(
        lambda f: edit_line(f, "driver_standings.csv", 3, lambda s: "\n" + s),
        "driver_standings.csv line 3: blank line",
        id="blank-line-mid-file",
    ),
    pytest.param(_latin1_driver, "drivers.csv line 3: not valid UTF-8 (byte 0xe4)", id="not-utf8"),
    pytest.param(
        lambda f: (f / "status.csv").write_bytes(b""), "status.csv: file is empty", id="empty-file"
    ),
    pytest.param(
        lambda f: (f / "status.csv").write_text("statusId,status\n", encoding="utf-8"),
        "status.csv: no data rows (header only)",
        id="header-only",
    ),
    pytest.param(
        _second_races_file,
        "races.csv: found 2 files in {src}: races.csv, sub/races.csv",
        id="two-races-files",
    ),
]


def rejected(loaded: Path, mini: Path) -> list[str]:
    """Load the (corrupted) mini source over `loaded`: the errors, with `loaded` untouched."""
    before = snapshot(loaded)
    with pytest.raises(LoadError) as info:
        load(str(mini), loaded)
    assert str(info.value) == "\n".join(info.value.errors)
    assert snapshot(loaded) == before
    return info.value.errors


@pytest.mark.parametrize(("corrupt", "expected"), BAD_CASES)
def test_bad_input_is_rejected_and_raw_dir_untouched(
    loaded: Path, mini: Path, corrupt: Callable[[Path], None], expected: str
) -> None:
    corrupt(mini)
    assert expected.format(src=mini) in rejected(loaded, mini)


# --- one row per (race, driver); value ranges --------------------------------------------------

_SHARED_NOTE = (
    f"; only races up to {load_data.LAST_SHARED_DRIVE_SEASON} (shared drives) "
    "may list a driver twice"
)


def _set_race_year(folder: Path, line: int, year: int) -> None:
    """Move the race on `line` of races.csv (with its date) to `year`."""
    set_field(folder, "races.csv", line, 1, str(year))
    edit_line(folder, "races.csv", line, lambda s: re.sub(r"\b20\d\d-", f"{year}-", s))


def _dup_result_in(year: int) -> Callable[[Path], None]:
    # results.csv line 3 (race 1, Norris) becomes a second row for race 1, Verstappen (line 2).
    def corrupt(folder: Path) -> None:
        _set_race_year(folder, 2, year)
        set_field(folder, "results.csv", 3, 2, "830")

    return corrupt


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        pytest.param(
            _dup_result_in(2024),
            "results.csv line 3, columns raceId, driverId: duplicate (1, 830) (first at line 2)"
            + _SHARED_NOTE,
            id="results",
        ),
        pytest.param(
            _dup_result_in(load_data.LAST_SHARED_DRIVE_SEASON + 1),
            "results.csv line 3, columns raceId, driverId: duplicate (1, 830) (first at line 2)"
            + _SHARED_NOTE,
            id="results-first-season-after-shared-drives",
        ),
        pytest.param(
            lambda f: set_field(f, "sprint_results.csv", 3, 2, "830"),
            "sprint_results.csv line 3, columns raceId, driverId: duplicate (2, 830) "
            "(first at line 2)",
            id="sprint_results",
        ),
        pytest.param(
            lambda f: set_field(f, "qualifying.csv", 4, 2, "846"),
            "qualifying.csv line 4, columns raceId, driverId: duplicate (1, 846) (first at line 3)",
            id="qualifying",
        ),
    ],
)
def test_duplicate_race_driver_is_rejected_and_raw_dir_untouched(
    loaded: Path, mini: Path, corrupt: Callable[[Path], None], expected: str
) -> None:
    corrupt(mini)
    assert rejected(loaded, mini) == [expected]


@pytest.mark.parametrize("year", [1955, load_data.LAST_SHARED_DRIVE_SEASON])
def test_duplicate_result_in_a_shared_drive_season_loads(
    loaded: Path, mini: Path, year: int
) -> None:
    _dup_result_in(year)(mini)
    manifest = load(str(mini), loaded)
    assert manifest["tables"]["results"]["rows"] == 6
    rows = csv_rows(loaded / "results.csv")
    assert [r[1:3] for r in rows[1:3]] == [["1", "830"], ["1", "830"]]


_NEXT_YEAR = date.today().year + 1
_OUT_OF_RANGE = [
    # (file, line, field index, bad value, expected error)
    ("results.csv", 2, 6, "0", "column position: 0 is below the minimum 1"),
    ("results.csv", 3, 8, "0", "column positionOrder: 0 is below the minimum 1"),
    ("results.csv", 4, 5, "-1", "column grid: -1 is below the minimum 0"),
    ("results.csv", 5, 9, "-0.5", "column points: -0.5 is below the minimum 0"),
    ("results.csv", 6, 10, "-3", "column laps: -3 is below the minimum 0"),
    ("sprint_results.csv", 2, 6, "-2", "column position: -2 is below the minimum 1"),
    ("sprint_results.csv", 3, 8, "0", "column positionOrder: 0 is below the minimum 1"),
    ("sprint_results.csv", 4, 5, "-1", "column grid: -1 is below the minimum 0"),
    ("sprint_results.csv", 2, 9, "-8", "column points: -8 is below the minimum 0"),
    ("sprint_results.csv", 3, 10, "-19", "column laps: -19 is below the minimum 0"),
    ("qualifying.csv", 2, 5, "0", "column position: 0 is below the minimum 1"),
    ("races.csv", 4, 5, "2026-03-16", "column date: 2026-03-16 is not in the race's year 2025"),
    ("races.csv", 4, 5, "2205-03-16", "column date: 2205-03-16 is not in the race's year 2025"),
]


@pytest.mark.parametrize(
    ("file", "line", "index", "value", "expected"),
    [
        pytest.param(f, n, i, v, e, id=f"{f}-{e.split(':')[0].removeprefix('column ')}={v}")
        for f, n, i, v, e in _OUT_OF_RANGE
    ],
)
def test_value_out_of_range_is_rejected_and_raw_dir_untouched(
    loaded: Path, mini: Path, file: str, line: int, index: int, value: str, expected: str
) -> None:
    set_field(mini, file, line, index, value)
    assert rejected(loaded, mini) == [f"{file} line {line}, {expected}"]


@pytest.mark.parametrize("year", [_NEXT_YEAR + 1, 2205, load_data.FIRST_SEASON - 1])
def test_race_year_out_of_range_is_rejected_and_raw_dir_untouched(
    loaded: Path, mini: Path, year: int
) -> None:
    _set_race_year(mini, 3, year)  # date moves along: only the year is wrong
    assert rejected(loaded, mini) == [
        f"races.csv line 3, column year: {year} is outside 1950-{_NEXT_YEAR} "
        "(a calendar is published at most a year ahead)"
    ]


def test_range_boundaries_load(loaded: Path, mini: Path) -> None:
    _set_race_year(mini, 4, _NEXT_YEAR)  # next season's calendar may already be out
    _set_race_year(mini, 2, load_data.FIRST_SEASON)
    for file, line, index, value in [
        ("results.csv", 2, 5, "0"),  # grid 0: pit-lane start
        ("results.csv", 2, 9, "0"),
        ("results.csv", 2, 10, "0"),
        ("sprint_results.csv", 2, 9, "0.0"),
        ("results.csv", 3, 6, r"\N"),  # a null position is not range-checked
    ]:
        set_field(mini, file, line, index, value)
    manifest = load(str(mini), loaded)
    assert manifest["tables"]["races"]["rows"] == 3
    assert csv_rows(loaded / "races.csv")[3][1] == str(_NEXT_YEAR)


def test_broken_parent_key_does_not_cascade_into_fk_errors(loaded: Path, mini: Path) -> None:
    set_field(mini, "drivers.csv", 2, 0, "1x")
    with pytest.raises(LoadError) as info:
        load(str(mini), loaded)
    assert info.value.errors == ["drivers.csv line 2, column driverId: '1x' is not an integer"]


def test_errors_are_capped(loaded: Path, mini: Path) -> None:
    before = snapshot(loaded)
    extra = [f"{100 + i},1,1,1,44,9,x,R,3,0,40,\\N,\\N,30,5,\\N,\\N,130" for i in range(50)]
    with (mini / "results.csv").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(extra) + "\n")
    with pytest.raises(LoadError) as info:
        load(str(mini), loaded)
    errors = info.value.errors
    assert len(errors) == load_data.MAX_ERRORS + 1
    assert errors[0] == "results.csv line 8, column position: 'x' is not an integer"
    assert errors[-1] == f"stopped after {load_data.MAX_ERRORS} errors"
    assert snapshot(loaded) == before


def test_several_problems_are_reported_together(loaded: Path, mini: Path) -> None:
    (mini / "qualifying.csv").unlink()
    set_field(mini, "results.csv", 3, 1, "99")
    with pytest.raises(LoadError) as info:
        load(str(mini), loaded)
    assert info.value.errors == [
        f"missing file: qualifying.csv (looked in {mini})",
        "results.csv line 3, column raceId: 99 not found in races.csv",
    ]


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="source not found"):
        load(str(tmp_path / "nowhere"), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_failed_swap_restores_previous_folder(
    loaded: Path, mini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(loaded)
    real_rename = os.rename
    calls: list[tuple[str, str]] = []

    def flaky_rename(src: str, dst: str) -> None:
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # the new folder moving into place
            raise OSError("simulated failure")
        real_rename(src, dst)

    monkeypatch.setattr(load_data.os, "rename", flaky_rename)
    with pytest.raises(OSError, match="simulated failure"):
        load(str(mini), loaded)
    assert snapshot(loaded) == before


def test_failure_while_writing_leaves_no_temp_folder(
    loaded: Path, mini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(loaded)

    def broken_manifest(*_args: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(load_data, "_data_version", broken_manifest)
    with pytest.raises(RuntimeError, match="disk full"):
        load(str(mini), loaded)
    assert snapshot(loaded) == before


# --- command line -----------------------------------------------------------------------------


def test_main_reports_errors_on_stderr(
    loaded: Path, mini: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(loaded)
    set_field(mini, "results.csv", 3, 1, "99")
    assert load_data.main(["--source", str(mini), "--dest", str(loaded)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: results.csv line 3, column raceId: 99 not found in races.csv",
        f"raw data in {loaded} left unchanged",
    ]
    assert snapshot(loaded) == before


def test_main_uses_environment_defaults(
    tmp_path: Path, mini: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "env-raw"
    monkeypatch.setenv("PITWALL_DATA_SOURCE", str(mini))
    monkeypatch.setenv("PITWALL_RAW_DIR", str(dest))
    assert load_data.main([]) == 0
    out = capsys.readouterr().out
    version = read_manifest(dest)["data_version"]
    assert f"data_version {version}" in out
    assert "results" in out and "6 rows" in out


@pytest.mark.parametrize("invocation", [["scripts/load_data.py"], ["-m", "scripts.load_data"]])
def test_runs_as_script_and_module(tmp_path: Path, mini: Path, invocation: list[str]) -> None:
    dest = tmp_path / "cli-raw"
    proc = subprocess.run(
        [sys.executable, *invocation, "--source", str(mini), "--dest", str(dest)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (dest / "manifest.json").is_file()


def test_redact_source_strips_credentials() -> None:
    url = (
        "https://alice:s3cret@example.com:8443/dump.zip?dump_type=csv&token=abc&X-Amz-Signature=z#f"
    )
    assert load_data.redact_source(url) == "https://example.com:8443/dump.zip?dump_type=csv"
    assert load_data.redact_source("/data/f1") == "/data/f1"
    assert load_data.redact_source(load_data.DEFAULT_SOURCE) == load_data.DEFAULT_SOURCE


def test_read_manifest_without_load(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"no manifest\.json"):
        read_manifest(tmp_path)


# --- the real data (read-only shared folder) --------------------------------------------------


@pytest.fixture(scope="module")
def real_loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if not (REAL_DATA / "races.csv").is_file():
        pytest.skip(f"real F1 data not found at {REAL_DATA}")
    dest = tmp_path_factory.mktemp("real") / "raw"
    return dest, load(str(REAL_DATA), dest)


@pytest.fixture(scope="module")
def real_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REAL_DATA / "races.csv").is_file():
        pytest.skip(f"real F1 data not found at {REAL_DATA}")
    archive = tmp_path_factory.mktemp("zip") / "f1.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("f1db/", "")
        zf.write(REAL_DATA / "README.md", "f1db/README.md")
        for path in sorted(REAL_DATA.glob("*.csv")):
            zf.write(path, f"f1db/csv/{path.name}")
    return archive


@requires_real_data
def test_real_data_all_tables_with_source_row_counts(real_loaded: tuple[Path, dict]) -> None:
    dest, manifest = real_loaded
    assert manifest == read_manifest(dest)
    assert manifest["source"] == str(REAL_DATA)
    assert sorted(manifest["tables"]) == sorted(REQUIRED)
    for name, entry in manifest["tables"].items():
        source_rows = csv_rows(REAL_DATA / f"{name}.csv")
        assert entry["rows"] == len(source_rows) - 1, name
        assert entry["sha256"] == sha256_file(dest / entry["file"])
        assert entry["source_sha256"] == sha256_file(REAL_DATA / f"{name}.csv")
    pairs = sorted((e["file"], e["sha256"]) for e in manifest["tables"].values())
    expected = hashlib.sha256("".join(f"{f}\t{h}\n" for f, h in pairs).encode()).hexdigest()
    assert manifest["data_version"] == expected
    assert json.loads((dest / "manifest.json").read_text())["data_version"] == expected


@requires_real_data
def test_real_data_values_preserved_and_races_padded(real_loaded: tuple[Path, dict]) -> None:
    dest, _ = real_loaded
    for name in REQUIRED:
        source_rows = csv_rows(REAL_DATA / f"{name}.csv")
        written = csv_rows(dest / f"{name}.csv")
        width = len(source_rows[0])
        padded = [row + [r"\N"] * (width - len(row)) for row in source_rows]
        assert written == padded, name
    races = csv_rows(dest / "races.csv")
    rows_2025 = [r for r in races[1:] if r[1] == "2025"]
    assert rows_2025, "expected 2025 races in the real data"
    assert all(len(r) == 18 and r[8:] == [r"\N"] * 10 for r in rows_2025)


@requires_real_data
def test_real_data_readable_by_duckdb(real_loaded: tuple[Path, dict]) -> None:
    dest, manifest = real_loaded
    races = dest / "races.csv"
    sniffed = f"read_csv('{races}', header=true, nullstr='\\N')"
    count = duckdb.sql(f"select count(*) from {sniffed}").fetchall()[0]
    assert count == (manifest["tables"]["races"]["rows"],)
    types = {row[0]: row[1] for row in duckdb.sql(f"describe select * from {sniffed}").fetchall()}
    assert types["raceId"] == "BIGINT"
    assert types["date"] == "DATE"
    assert types["fp1_date"] == "DATE"
    assert types["time"] == "TIME"
    # The options the dbt sources use: everything as text, \N as null.
    for name, entry in manifest["tables"].items():
        query = (
            f"select count(*) from read_csv('{dest / entry['file']}', header=true, "
            "nullstr='\\N', all_varchar=true, quote='\"', escape='\"')"
        )
        assert duckdb.sql(query).fetchall()[0] == (entry["rows"],), name


@requires_real_data
def test_real_data_reload_gives_same_version(real_loaded: tuple[Path, dict]) -> None:
    dest, first = real_loaded
    second = load(str(REAL_DATA), dest)
    assert second["data_version"] == first["data_version"]
    assert os.listdir(dest.parent) == ["raw"]


@requires_real_data
def test_zip_source_with_subfolders(
    real_zip: Path, real_loaded: tuple[Path, dict], tmp_path: Path
) -> None:
    manifest = load(str(real_zip), tmp_path / "raw")
    assert manifest["source"] == str(real_zip)
    assert manifest["data_version"] == real_loaded[1]["data_version"]


def test_zip_with_two_races_files_names_both(mini: Path, tmp_path: Path) -> None:
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in mini.iterdir():
            zf.write(path, f"a/{path.name}")
        zf.write(mini / "races.csv", "b/races.csv")
    with pytest.raises(LoadError) as info:
        load(str(archive), tmp_path / "raw")
    assert info.value.errors == [f"races.csv: found 2 files in {archive}: a/races.csv, b/races.csv"]


class _ZipHandler(http.server.SimpleHTTPRequestHandler):
    user_agents: list[str] = []  # noqa: RUF012 - shared on purpose: one server per test

    def do_GET(self) -> None:
        self.user_agents.append(self.headers.get("User-Agent", ""))
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on a free port serving the folder it yields; shut down afterwards."""
    root = tmp_path / "www"
    root.mkdir()
    _ZipHandler.user_agents = []
    handler = functools.partial(_ZipHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@requires_real_data
def test_url_source(
    http_root: tuple[str, Path], real_zip: Path, real_loaded: tuple[Path, dict], tmp_path: Path
) -> None:
    host, root = http_root
    shutil.copy(real_zip, root / "f1.zip")
    url = f"http://bob:hunter2@{host}/f1.zip?dump_type=csv&token=t0p"
    manifest = load(url, tmp_path / "raw")
    assert manifest["data_version"] == real_loaded[1]["data_version"]
    assert manifest["source"] == f"http://{host}/f1.zip?dump_type=csv"
    assert _ZipHandler.user_agents and _ZipHandler.user_agents[0].startswith("pitwall-loader")


def test_url_not_found_leaves_raw_dir_untouched(http_root: tuple[str, Path], loaded: Path) -> None:
    host, _ = http_root
    before = snapshot(loaded)
    with pytest.raises(LoadError) as info:
        load(f"http://{host}/missing.zip?token=secret", loaded)
    assert info.value.errors[0].startswith(f"download failed: http://{host}/missing.zip: HTTP 404")
    assert "secret" not in str(info.value)
    assert snapshot(loaded) == before


def test_url_that_is_not_a_zip(http_root: tuple[str, Path], tmp_path: Path) -> None:
    host, root = http_root
    (root / "page.zip").write_text("<html>maintenance</html>", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load(f"http://{host}/page.zip", tmp_path / "raw")
    assert info.value.errors == [f"not a zip file: http://{host}/page.zip"]


def test_a_load_killed_between_its_renames_is_recovered(loaded: Path, mini: Path) -> None:
    before = snapshot(loaded)
    # What a SIGKILL between "dest → dest.old-PID" and "new → dest" leaves behind.
    os.rename(loaded, loaded.with_name(f"{loaded.name}.old-99999"))
    (mini / "qualifying.csv").unlink()
    with pytest.raises(LoadError):
        load(str(mini), loaded)
    assert snapshot(loaded) == before
    assert list(loaded.parent.glob(f"{loaded.name}.old-*")) == []
