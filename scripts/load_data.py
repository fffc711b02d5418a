"""Load the raw Ergast-format F1 CSVs into the raw-data folder, validating them first.

Usage: python scripts/load_data.py [--source SRC] [--dest DIR]

SRC is a folder, a .zip file or an http(s) URL of a zip (default: $PITWALL_DATA_SOURCE, else
DEFAULT_SOURCE). DIR defaults to $PITWALL_RAW_DIR, else <repo>/data/raw. Every table is checked
(columns, types, nulls, value ranges, primary, unique and foreign keys) before DIR is touched;
the new folder then replaces DIR in a single rename, with a manifest.json recording row counts
and hashes.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# A public, CC0 mirror of the Ergast-format tables (the Kaggle "Formula 1 Race Data" set by
# jtrotman), refreshed after each race; its zip holds the CSVs in a data/ folder.
DEFAULT_SOURCE = "https://github.com/TracingInsights/RaceData/releases/latest/download/data.zip"
REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "manifest.json"
NULL = r"\N"
MAX_ERRORS = 20
DOWNLOAD_TIMEOUT_S = 60
USER_AGENT = "pitwall-loader/0.1 (F1 podium forecasting)"

# Tables that are legitimately empty in data cut off before they existed (sprints began in 2021,
# qualifying times in 1994, constructors' standings in 1958).
MAY_BE_EMPTY = frozenset({"sprint_results", "qualifying", "constructor_standings"})

REQUIRED: tuple[str, ...] = (
    "circuits",
    "constructors",
    "drivers",
    "races",
    "results",
    "status",
    "driver_standings",
    "qualifying",
    "sprint_results",
    "constructor_standings",
)


class Col(NamedTuple):
    type: str  # int | float | date | time | text
    nullable: bool = False


INT, INT_N = Col("int"), Col("int", True)
FLOAT, FLOAT_N = Col("float"), Col("float", True)
DATE, DATE_N = Col("date"), Col("date", True)
TIME_N = Col("time", True)
TEXT, TEXT_N = Col("text"), Col("text", True)

# Nullability follows the real 1950-2025 data. A few columns are nullable although today's data
# has no nulls there, because Ergast has published nulls in them before (circuits.alt) or the
# sibling column with the same meaning has them (sprint_results.number from results.number,
# constructor_standings.position from driver_standings.position). Columns no dbt model reads
# beyond staging (urls, circuit location and coordinates, a team's nationality, positionText,
# laps, wins, the qualifying car number) accept a null too: a new driver, team or circuit often
# arrives without them, and a value nothing uses must never block a refresh. Every column the
# features read stays required.
SCHEMAS: dict[str, dict[str, Col]] = {
    "circuits": {
        "circuitId": INT,
        "circuitRef": TEXT,
        "name": TEXT,
        "location": TEXT_N,
        "country": TEXT,
        "lat": FLOAT_N,
        "lng": FLOAT_N,
        "alt": INT_N,
        "url": TEXT_N,
    },
    "constructors": {
        "constructorId": INT,
        "constructorRef": TEXT,
        "name": TEXT,
        "nationality": TEXT_N,
        "url": TEXT_N,
    },
    "drivers": {
        "driverId": INT,
        "driverRef": TEXT,
        "number": INT_N,
        "code": TEXT_N,
        "forename": TEXT,
        "surname": TEXT,
        "dob": DATE,
        "nationality": TEXT,
        "url": TEXT_N,
    },
    "races": {
        "raceId": INT,
        "year": INT,
        "round": INT,
        "circuitId": INT,
        "name": TEXT,
        "date": DATE,
        "time": TIME_N,
        "url": TEXT_N,
        "fp1_date": DATE_N,
        "fp1_time": TIME_N,
        "fp2_date": DATE_N,
        "fp2_time": TIME_N,
        "fp3_date": DATE_N,
        "fp3_time": TIME_N,
        "quali_date": DATE_N,
        "quali_time": TIME_N,
        "sprint_date": DATE_N,
        "sprint_time": TIME_N,
    },
    "results": {
        "resultId": INT,
        "raceId": INT,
        "driverId": INT,
        "constructorId": INT,
        "number": INT_N,
        "grid": INT,
        "position": INT_N,
        "positionText": TEXT_N,
        "positionOrder": INT,
        "points": FLOAT,
        "laps": INT_N,
        "time": TEXT_N,
        "milliseconds": INT_N,
        "fastestLap": INT_N,
        "rank": INT_N,
        "fastestLapTime": TEXT_N,
        "fastestLapSpeed": FLOAT_N,
        "statusId": INT,
    },
    "status": {"statusId": INT, "status": TEXT},
    "driver_standings": {
        "driverStandingsId": INT,
        "raceId": INT,
        "driverId": INT,
        "points": FLOAT,
        "position": INT_N,
        "positionText": TEXT_N,
        "wins": INT_N,
    },
    "qualifying": {
        "qualifyId": INT,
        "raceId": INT,
        "driverId": INT,
        "constructorId": INT,
        "number": INT_N,
        "position": INT,
        "q1": TEXT_N,
        "q2": TEXT_N,
        "q3": TEXT_N,
    },
    "sprint_results": {
        "resultId": INT,
        "raceId": INT,
        "driverId": INT,
        "constructorId": INT,
        "number": INT_N,
        "grid": INT,
        "position": INT_N,
        "positionText": TEXT_N,
        "positionOrder": INT,
        "points": FLOAT,
        "laps": INT_N,
        "time": TEXT_N,
        "milliseconds": INT_N,
        "fastestLap": INT_N,
        "fastestLapTime": TEXT_N,
        "statusId": INT,
        "rank": INT_N,
    },
    "constructor_standings": {
        "constructorStandingsId": INT,
        "raceId": INT,
        "constructorId": INT,
        "points": FLOAT,
        "position": INT_N,
        "positionText": TEXT_N,
        "wins": INT_N,
    },
}

PRIMARY_KEYS: dict[str, str] = {
    "circuits": "circuitId",
    "constructors": "constructorId",
    "drivers": "driverId",
    "races": "raceId",
    "results": "resultId",
    "status": "statusId",
    "driver_standings": "driverStandingsId",
    "qualifying": "qualifyId",
    "sprint_results": "resultId",
    "constructor_standings": "constructorStandingsId",
}

# One result, sprint result or qualifying row per driver and race: a second row for a (race,
# driver) would be merged downstream as if it were a shared drive (below).
_PER_DRIVER = (("raceId", "driverId"),)
UNIQUE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "races": (("year", "round"),),
    "results": _PER_DRIVER,
    "sprint_results": _PER_DRIVER,
    "qualifying": _PER_DRIVER,
}

# Shared drives, last in 1978: the real results.csv has several rows for one (race, driver) in
# 1950-1958, 1960-1962 and 1964 (two drivers sharing a car, each credited, or one driver taking
# over a second car) and once in 1978 (Harald Ertl entered at Monza by both ATS and Ensign,
# failing to qualify and to pre-qualify). Results of races up to this season may repeat a
# (raceId, driverId); later ones may not, and sprint_results and qualifying never may.
LAST_SHARED_DRIVE_SEASON = 1978
SHARED_DRIVE_KEYS: dict[str, tuple[str, ...]] = {"results": ("raceId", "driverId")}

# Inclusive lower bounds of numeric columns (a null is not checked): a finishing position of 0,
# a negative grid slot, points or laps are typos the features would silently average in.
_RESULT_MINIMUMS = {"position": 1, "positionOrder": 1, "grid": 0, "points": 0, "laps": 0}
MINIMUMS: dict[str, dict[str, int]] = {
    "results": _RESULT_MINIMUMS,
    "sprint_results": _RESULT_MINIMUMS,
    "qualifying": {"position": 1},
}

# races.year runs from the first championship season to a year ahead (the calendar is published
# up to a year in advance; anything later is a typo), and a race's date falls in its own year.
FIRST_SEASON = 1950

_RESULT_FKS = {
    "raceId": "races",
    "driverId": "drivers",
    "constructorId": "constructors",
    "statusId": "status",
}
FOREIGN_KEYS: dict[str, dict[str, str]] = {
    "races": {"circuitId": "circuits"},
    "results": _RESULT_FKS,
    "sprint_results": _RESULT_FKS,
    "qualifying": {"raceId": "races", "driverId": "drivers", "constructorId": "constructors"},
    "driver_standings": {"raceId": "races", "driverId": "drivers"},
    "constructor_standings": {"raceId": "races", "constructorId": "constructors"},
}

# The published races.csv leaves the session columns off the current season's rows entirely;
# only these trailing columns may be absent (and are padded with nulls). A short row anywhere
# else is how a truncated file shows up, so it stays an error.
PADDABLE: dict[str, frozenset[str]] = {
    "races": frozenset(
        f"{session}_{part}"
        for session in ("fp1", "fp2", "fp3", "quali", "sprint")
        for part in ("date", "time")
    ),
}

# Credentials can ride in a URL's query string (signed links); keep them out of the manifest.
_SECRET_PARAM = re.compile(r"token|key|secret|pass|sig|auth|cred|session", re.IGNORECASE)

# Regexes rather than int()/float(): those accept "1_000", " 7", "nan" and "inf".
INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"\d{2}:\d{2}:\d{2}")


class LoadError(Exception):
    """The source data is unusable; `errors` holds one line per problem found."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class _ErrorLog:
    def __init__(self, limit: int = MAX_ERRORS) -> None:
        self.messages: list[str] = []
        self.limit = limit

    def add(self, message: str) -> None:
        self.messages.append(message)
        if len(self.messages) >= self.limit:
            raise LoadError([*self.messages, f"stopped after {self.limit} errors"])

    def raise_if_any(self) -> None:
        if self.messages:
            raise LoadError(self.messages)


def is_date(value: str) -> bool:
    if not _DATE_RE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_time(value: str) -> bool:
    if not _TIME_RE.fullmatch(value):
        return False
    try:
        time.fromisoformat(value)
    except ValueError:
        return False
    return True


_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "int": (lambda v: INT_RE.fullmatch(v) is not None, "is not an integer"),
    "float": (lambda v: _FLOAT_RE.fullmatch(v) is not None, "is not a number"),
    "date": (is_date, "is not a valid date (YYYY-MM-DD)"),
    "time": (_is_time, "is not a valid time (HH:MM:SS)"),
}


@dataclass
class _Table:
    name: str
    header: list[str]
    source_sha256: str
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    @property
    def file(self) -> str:
        return f"{self.name}.csv"


# --- locating the source files ---------------------------------------------------------------


def redact_source(source: str) -> str:
    """Return `source` without URL userinfo, fragment or secret-looking query parameters."""
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https"):
        return source
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _SECRET_PARAM.search(k)
    ]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(query), ""))


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _download(url: str, target: Path, log: Callable[[str], None]) -> None:
    parts = urlsplit(url)
    shown = redact_source(url)
    headers = {"User-Agent": USER_AGENT}
    # urllib refuses userinfo in the URL itself, so it travels as a Basic auth header instead.
    if parts.username is not None:
        token = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        netloc = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    log(f"downloading {shown}")
    request = urllib.request.Request(url, headers=headers)
    done, next_report = 0, 1 << 20
    try:
        with (
            urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response,
            target.open("wb") as out,
        ):
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                if done >= next_report:
                    log(f"  {done / 1e6:.1f} MB")
                    next_report += 5 << 20
    except urllib.error.HTTPError as exc:
        raise LoadError([f"download failed: {shown}: HTTP {exc.code} {exc.reason}"]) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise LoadError([f"download failed: {shown}: {reason}"]) from exc
    log(f"  downloaded {done / 1e6:.1f} MB")


def _pick(
    matches: dict[str, list[str]], wanted: Sequence[str], where: str, errors: _ErrorLog
) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for file in wanted:
        found = matches.get(file, [])
        if not found:
            errors.add(f"missing file: {file} (looked in {where})")
        elif len(found) > 1:
            errors.add(f"{file}: found {len(found)} files in {where}: {', '.join(found)}")
        else:
            chosen[file] = found[0]
    return chosen


def _read_folder(
    root: Path, wanted: Sequence[str], where: str, errors: _ErrorLog
) -> dict[str, bytes]:
    matches: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.csv")):
        if path.name in wanted and path.is_file():
            matches.setdefault(path.name, []).append(path.relative_to(root).as_posix())
    chosen = _pick(matches, wanted, where, errors)
    return {file: (root / rel).read_bytes() for file, rel in chosen.items()}


def _read_zip(
    archive: Path, wanted: Sequence[str], where: str, errors: _ErrorLog
) -> dict[str, bytes]:
    if not zipfile.is_zipfile(archive):
        raise LoadError([f"not a zip file: {where}"])
    try:
        with zipfile.ZipFile(archive) as zf:
            matches: dict[str, list[str]] = {}
            for info in zf.infolist():
                base = info.filename.rstrip("/").rpartition("/")[2]
                if not info.is_dir() and base in wanted:
                    matches.setdefault(base, []).append(info.filename)
            chosen = _pick(matches, wanted, where, errors)
            return {file: zf.read(member) for file, member in chosen.items()}
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError) as exc:
        raise LoadError([f"cannot read zip file {where}: {exc}"]) from exc


def read_source_files(
    source: str,
    wanted: Sequence[str],
    errors: _ErrorLog,
    log: Callable[[str], None],
    what: str = "source",
) -> dict[str, bytes]:
    """The files named in `wanted` (each found once, anywhere) in a folder, a zip or the URL of
    a zip, by file name. Shared by both loaders."""
    where = redact_source(source)
    if _is_url(source):
        with tempfile.TemporaryDirectory(prefix="pitwall-download-") as tmp:
            archive = Path(tmp) / "source.zip"
            _download(source, archive, log)
            return _read_zip(archive, wanted, where, errors)
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_folder(path, wanted, where, errors)
    if path.is_file():
        return _read_zip(path, wanted, where, errors)
    raise LoadError([f"{what} not found: {where}"])


# --- parsing and validating ------------------------------------------------------------------


def _decode(name: str, data: bytes, errors: _ErrorLog) -> str | None:
    if not data.strip():
        errors.add(f"{name}.csv: file is empty")
        return None
    try:
        # utf-8-sig: a BOM (Excel re-saves) would otherwise glue itself to the first column name.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        errors.add(f"{name}.csv line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})")
        return None


def _check_header(name: str, header: list[str], errors: _ErrorLog) -> bool:
    expected = list(SCHEMAS[name])
    fname = f"{name}.csv"
    if not any(header):
        errors.add(f"{fname} line 1: blank header line")
        return False
    if len(header) == 1 and len(expected) > 1:
        errors.add(
            f"{fname}: header has 1 column; expected comma-separated with columns "
            + ", ".join(expected)
        )
        return False
    if not set(header) & set(expected):
        # A different export format (e.g. snake_case columns) would otherwise produce one
        # "missing column" line per column and exhaust the error budget on a single file.
        errors.add(
            f"{fname}: header has none of the expected columns; expected Ergast-format columns "
            + ", ".join(expected)
            + f"; found {', '.join(header[:8])}"
            + (", ..." if len(header) > 8 else "")
        )
        return False
    ok = True
    seen: set[str] = set()
    for col in header:
        if col in seen:
            errors.add(f"{fname}: duplicate column '{col}' in header")
            ok = False
        seen.add(col)
    for col in expected:
        if col not in seen:
            errors.add(f"{fname}: missing column '{col}'")
            ok = False
    return ok


def _pad_from(name: str, header: list[str]) -> int:
    """Index of the first column from which a row may stop early (len(header) if none)."""
    paddable = PADDABLE.get(name, frozenset())
    start = len(header)
    while start > 0 and header[start - 1] in paddable:
        start -= 1
    return start


def _check_values(
    table: _Table, row: list[str], line: int, checks: list[tuple[int, str, Col]], errors: _ErrorLog
) -> None:
    for index, col, spec in checks:
        value = row[index]
        if value == NULL:
            if not spec.nullable:
                errors.add(f"{table.file} line {line}, column {col}: null (\\N) not allowed")
            continue
        if value == "":
            errors.add(
                f"{table.file} line {line}, column {col}: empty value "
                "(nulls must be written as \\N)"
            )
            continue
        check = _CHECKS.get(spec.type)
        if check is not None and not check[0](value):
            shown = value if len(value) <= 40 else value[:40] + "..."
            errors.add(f"{table.file} line {line}, column {col}: {shown!r} {check[1]}")


def _parse_table(name: str, data: bytes, errors: _ErrorLog) -> _Table | None:
    text = _decode(name, data, errors)
    if text is None:
        return None
    fname = f"{name}.csv"
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        errors.add(f"{fname} line 1: malformed CSV header ({exc})")
        return None
    if not _check_header(name, header, errors):
        return None

    table = _Table(name, header, hashlib.sha256(data).hexdigest())
    width = len(header)
    pad_from = _pad_from(name, header)
    checks = [(header.index(col), col, spec) for col, spec in SCHEMAS[name].items()]
    blank_lines: list[int] = []
    prev_end = reader.line_num
    try:
        for row in reader:
            line, prev_end = prev_end + 1, reader.line_num
            if not row:
                blank_lines.append(line)
                continue
            # Blank lines only matter when data follows them; trailing ones are harmless.
            for blank in blank_lines:
                errors.add(f"{fname} line {blank}: blank line")
            blank_lines.clear()
            if len(row) > width or len(row) < pad_from:
                count = f"{len(row)} field" + ("" if len(row) == 1 else "s")
                errors.add(f"{fname} line {line}: {count}, header has {width}")
                continue
            if len(row) < width:
                row.extend([NULL] * (width - len(row)))
            _check_values(table, row, line, checks, errors)
            table.rows.append(row)
            table.lines.append(line)
    except csv.Error as exc:
        errors.add(f"{fname} line {prev_end + 1}: malformed CSV ({exc}); file truncated?")
        return None
    if not table.rows and name not in MAY_BE_EMPTY:
        errors.add(f"{fname}: no data rows (header only)")
        return None
    return table


def last_allowed_season() -> int:
    """The latest races.year accepted: next year's calendar may already be out."""
    return date.today().year + 1


def _check_ranges(table: _Table, errors: _ErrorLog) -> None:
    """Check MINIMUMS and, for races, the season and date; values with a type error are skipped
    (already reported)."""
    for col, lo in MINIMUMS.get(table.name, {}).items():
        index = table.header.index(col)
        pattern, number = (
            (INT_RE, int) if SCHEMAS[table.name][col].type == "int" else (_FLOAT_RE, float)
        )
        # A column holds few distinct values: judge each once, then look for the rows only if
        # one is out of range.
        low = {
            v for v in {row[index] for row in table.rows} if pattern.fullmatch(v) and number(v) < lo
        }
        if not low:
            continue
        for row, line in zip(table.rows, table.lines, strict=True):
            value = row[index]
            if value in low:
                errors.add(
                    f"{table.file} line {line}, column {col}: {value} is below the minimum {lo}"
                )
    if table.name != "races":
        return
    last = last_allowed_season()
    year_index, date_index = table.header.index("year"), table.header.index("date")
    for row, line in zip(table.rows, table.lines, strict=True):
        year, day = row[year_index], row[date_index]
        if not INT_RE.fullmatch(year):
            continue
        if not FIRST_SEASON <= int(year) <= last:
            errors.add(
                f"{table.file} line {line}, column year: {year} is outside {FIRST_SEASON}-{last} "
                "(a calendar is published at most a year ahead)"
            )
        elif is_date(day) and int(day[:4]) != int(year):
            errors.add(
                f"{table.file} line {line}, column date: {day} is not in the race's year {year}"
            )


def _races_after_shared_drives(races: _Table | None) -> set[int]:
    """raceIds of the seasons after LAST_SHARED_DRIVE_SEASON. A race whose id or year is not an
    integer is left out: its own error is the useful one."""
    if races is None:
        return set()
    year_index, id_index = races.header.index("year"), races.header.index("raceId")
    return {
        int(row[id_index])
        for row in races.rows
        if INT_RE.fullmatch(row[id_index])
        and INT_RE.fullmatch(row[year_index])
        and int(row[year_index]) > LAST_SHARED_DRIVE_SEASON
    }


def _check_keys(table: _Table, errors: _ErrorLog, strict_races: set[int]) -> tuple[set[int], bool]:
    """Check primary and unique keys; return the set of primary keys and whether it is complete.

    A SHARED_DRIVE_KEYS duplicate is an error only in a race of `strict_races` (the seasons
    after LAST_SHARED_DRIVE_SEASON); a race missing from races.csv is reported as such instead.
    """
    pk = PRIMARY_KEYS[table.name]
    pk_index = table.header.index(pk)
    first_seen: dict[int, int] = {}
    complete = True
    for row, line in zip(table.rows, table.lines, strict=True):
        value = row[pk_index]
        if not INT_RE.fullmatch(value):
            complete = False  # already reported as a type error
            continue
        key = int(value)
        if key in first_seen:
            errors.add(
                f"{table.file} line {line}, column {pk}: duplicate id {key} "
                f"(first at line {first_seen[key]})"
            )
        else:
            first_seen[key] = line
    for cols in UNIQUE_KEYS.get(table.name, ()):
        shared = SHARED_DRIVE_KEYS.get(table.name) == cols
        note = (
            f"; only races up to {LAST_SHARED_DRIVE_SEASON} (shared drives) may list a driver twice"
            if shared
            else ""
        )
        race_index = table.header.index("raceId") if shared else -1
        columns = [[row[i] for row in table.rows] for i in map(table.header.index, cols)]
        combos = list(zip(*columns, strict=True))
        # Column-wise counting first: the row loop below only handles the rare repeated keys.
        repeated = {combo for combo, n in Counter(combos).items() if n > 1}
        if not repeated:
            continue
        seen: dict[tuple[str, ...], int] = {}
        for combo, row, line in zip(combos, table.rows, table.lines, strict=True):
            if combo not in repeated:
                continue
            if combo not in seen:
                seen[combo] = line
                continue
            race = row[race_index]
            if shared and not (INT_RE.fullmatch(race) and int(race) in strict_races):
                continue
            errors.add(
                f"{table.file} line {line}, columns {', '.join(cols)}: duplicate "
                f"({', '.join(combo)}) (first at line {seen[combo]}){note}"
            )
    return set(first_seen), complete


def _check_foreign_keys(
    tables: dict[str, _Table], keys: dict[str, tuple[set[int], bool]], errors: _ErrorLog
) -> None:
    for child_name, refs in FOREIGN_KEYS.items():
        child = tables.get(child_name)
        if child is None:
            continue
        for col, parent in refs.items():
            parent_keys, complete = keys.get(parent, (set(), False))
            # An unreadable parent would flag every row; its own errors are the useful ones.
            if parent not in tables or not complete:
                continue
            index = child.header.index(col)
            for row, line in zip(child.rows, child.lines, strict=True):
                value = row[index]
                if INT_RE.fullmatch(value) and int(value) not in parent_keys:
                    errors.add(
                        f"{child.file} line {line}, column {col}: {value} not found in {parent}.csv"
                    )


def _validate(files: dict[str, bytes], errors: _ErrorLog) -> dict[str, _Table]:
    """Parse and check every table; raise LoadError listing what is wrong."""
    tables: dict[str, _Table] = {}
    for name in REQUIRED:
        if name in files:
            table = _parse_table(name, files[name], errors)
            if table is not None:
                tables[name] = table
    for table in tables.values():
        _check_ranges(table, errors)
    strict = _races_after_shared_drives(tables.get("races"))
    keys = {name: _check_keys(table, errors, strict) for name, table in tables.items()}
    _check_foreign_keys(tables, keys, errors)
    errors.raise_if_any()
    return tables


# --- writing ---------------------------------------------------------------------------------


def _render(table: _Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header)
    writer.writerows(table.rows)
    return buffer.getvalue().encode("utf-8")


def _data_version(entries: dict[str, dict]) -> str:
    """sha256 over every file's name and sha256: one version for the whole folder."""
    pairs = sorted((entry["file"], entry["sha256"]) for entry in entries.values())
    return hashlib.sha256("".join(f"{f}\t{h}\n" for f, h in pairs).encode()).hexdigest()


def _write_tables(tables: dict[str, _Table], folder: Path, source: str) -> dict:
    entries: dict[str, dict] = {}
    for name in REQUIRED:
        table = tables[name]
        data = _render(table)
        (folder / table.file).write_bytes(data)
        entries[name] = {
            "file": table.file,
            "rows": len(table.rows),
            "sha256": hashlib.sha256(data).hexdigest(),
            "source_sha256": table.source_sha256,
        }
    manifest = {
        "source": redact_source(source),
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": entries,
        "data_version": _data_version(entries),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _recover_interrupted_swap(dest: Path) -> None:
    """A load killed between its two renames leaves `dest` missing and `dest.old-PID` behind:
    put the last good data back before anything else happens."""
    if dest.exists():
        return
    leftovers = sorted(
        dest.parent.glob(f"{dest.name}.old-*"), key=lambda path: path.stat().st_mtime
    )
    if leftovers:
        os.rename(leftovers[-1], dest)


def _swap_in(new: Path, dest: Path) -> None:
    """Replace `dest` by `new` with renames, so readers see either the old or the new folder."""
    old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)  # left by an earlier crashed run that had the same pid
    had_old = dest.exists()
    if had_old:
        os.rename(dest, old)
    try:
        os.rename(new, dest)
    except BaseException:
        if had_old:
            os.rename(old, dest)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def load(source: str, dest: Path, *, log: Callable[[str], None] | None = None) -> dict:
    """Validate the tables found in `source` and install them in `dest`; return the manifest.

    Raises LoadError (with `dest` untouched) when the source is missing or any check fails.
    """
    say = log or (lambda _msg: None)
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise LoadError([f"destination {dest} exists and is not a directory"])

    if dest.parent.exists():
        _recover_interrupted_swap(dest)

    # One log for the whole run: missing files are reported alongside the content errors of
    # the files that were found, and the error cap counts both.
    errors = _ErrorLog()
    found = read_source_files(source, [f"{name}.csv" for name in REQUIRED], errors, say)
    files = {file.removesuffix(".csv"): data for file, data in found.items()}
    tables = _validate(files, errors)

    dest.parent.mkdir(parents=True, exist_ok=True)
    # Same parent as dest, so the final rename stays on one filesystem and is atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        # mkdtemp makes the folder private (0700); the raw data is meant to be shared like any
        # other project folder.
        staging.chmod(0o755)
        manifest = _write_tables(tables, staging, source)
        _swap_in(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    for name, entry in manifest["tables"].items():
        say(f"  {name:<22} {entry['rows']:>7} rows")
    say(f"loaded {len(manifest['tables'])} tables into {dest}")
    say(f"data_version {manifest['data_version']}")
    return manifest


def read_manifest(dest: Path) -> dict:
    """Return the manifest written by the last successful load into `dest`."""
    path = Path(dest) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoadError([f"no {MANIFEST} in {dest}; run scripts/load_data.py first"]) from None


# --- command line ----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        help="folder, .zip or http(s) URL of a zip "
        "(default: $PITWALL_DATA_SOURCE, else the public CC0 mirror of the Ergast-format tables)",
    )
    parser.add_argument(
        "--dest", help="raw-data folder to replace (default: $PITWALL_RAW_DIR, else data/raw)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    source = args.source or os.environ.get("PITWALL_DATA_SOURCE") or DEFAULT_SOURCE
    dest = Path(args.dest or os.environ.get("PITWALL_RAW_DIR") or REPO_ROOT / "data" / "raw")
    try:
        load(source, dest, log=print)
    except (LoadError, OSError) as exc:
        lines = exc.errors if isinstance(exc, LoadError) else [f"{type(exc).__name__}: {exc}"]
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        print(f"raw data in {dest} left unchanged", file=sys.stderr)
        return 2 if isinstance(exc, LoadError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
