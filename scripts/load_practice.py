"""Load the optional free-practice source: f1db release CSVs (CC BY 4.0), validated first.

Usage: python scripts/load_practice.py [--source SRC] [--dest DIR]

SRC is the f1db release zip (`f1db-csv.zip`) as a URL or a local file, or a folder holding its
CSVs (default: $PITWALL_PRACTICE_SOURCE). DIR defaults to $PITWALL_PRACTICE_DIR, else
<repo>/data/practice. Only the files the practice features need are taken. Every one is checked
(columns, types, keys, references) before DIR is touched; the new folder then replaces DIR in a
single rename, with a manifest.json recording rows, hashes and the data version. Without a
source, a DIR that does not exist yet gets the same files with headers only (everything builds,
practice features are null), and an existing DIR is kept as it is.

Data: F1DB, https://github.com/f1db/f1db, © F1DB, licensed under CC BY 4.0.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ""):
    # Run as `python scripts/<name>.py`: make the repository importable, as `python -m` does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.load_data import (
    INT_RE,
    MANIFEST,
    LoadError,
    _data_version,
    _ErrorLog,
    _recover_interrupted_swap,
    _swap_in,
    is_date,
    read_source_files,
    redact_source,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE_URL = "https://github.com/f1db/f1db/releases/latest/download/f1db-csv.zip"
ATTRIBUTION = "F1DB (https://github.com/f1db/f1db), © F1DB, CC BY 4.0"
PRACTICE_SESSIONS = (1, 2, 3, 4)


class Col(NamedTuple):
    type: str  # int | decimal | date | hhmm | text
    nullable: bool = False


INT, INT_N, TEXT, TEXT_N = Col("int"), Col("int", True), Col("text"), Col("text", True)
DATE, DATE_N, HHMM_N = Col("date"), Col("date", True), Col("hhmm", True)

_SESSION_COLUMNS = {
    f"{session}{part}": (DATE_N if part == "Date" else HHMM_N)
    for session in (
        "preQualifying",
        "freePractice1",
        "freePractice2",
        "freePractice3",
        "freePractice4",
        "qualifying1",
        "qualifying2",
        "qualifying",
        "sprintQualifying",
        "sprintRace",
    )
    for part in ("Date", "Time")
}
_PRACTICE = {
    "raceId": INT,
    "year": INT,
    "round": INT,
    "positionDisplayOrder": INT,
    "driverId": TEXT,
    "constructorId": TEXT,
    "timeMillis": INT_N,
    "laps": INT_N,
}
# The columns the features use, by f1db release file; other columns are kept but not checked.
SCHEMAS: dict[str, dict[str, Col]] = {
    "f1db-races.csv": {"id": INT, "year": INT, "round": INT, "date": DATE, **_SESSION_COLUMNS},
    "f1db-drivers.csv": {
        "id": TEXT,
        "firstName": TEXT,
        "lastName": TEXT,
        "dateOfBirth": DATE_N,
    },
    **{f"f1db-races-free-practice-{n}-results.csv": _PRACTICE for n in PRACTICE_SESSIONS},
}
KEYS: dict[str, tuple[str, ...]] = {
    "f1db-races.csv": ("id",),
    "f1db-drivers.csv": ("id",),
    **{
        f"f1db-races-free-practice-{n}-results.csv": ("raceId", "positionDisplayOrder")
        for n in PRACTICE_SESSIONS
    },
}
REFERENCES = (("raceId", "f1db-races.csv", "id"), ("driverId", "f1db-drivers.csv", "id"))

_HHMM_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")

CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "int": (lambda value: INT_RE.fullmatch(value) is not None, "is not an integer"),
    "date": (is_date, "is not a valid date (YYYY-MM-DD)"),
    "hhmm": (lambda value: _HHMM_RE.fullmatch(value) is not None, "is not a time (HH:MM)"),
}


class Parsed(NamedTuple):
    header: list[str]
    rows: list[dict[str, str]]  # by column; "" is null (f1db writes nulls as empty fields)
    lines: list[int]


def parse(name: str, data: bytes, errors: _ErrorLog) -> Parsed | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        errors.add(f"{name} line {line}: not valid UTF-8")
        return None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        errors.add(f"{name}: file is empty")
        return None
    missing = [column for column in SCHEMAS[name] if column not in header]
    if missing:
        errors.add(f"{name} line 1: missing column(s) {', '.join(missing)}")
        return None
    rows, lines = [], []
    for record in reader:
        line = reader.line_num
        if not record:
            continue
        if len(record) != len(header):
            errors.add(f"{name} line {line}: {len(record)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, record, strict=True))
        for column, spec in SCHEMAS[name].items():
            value = row[column]
            if value == "":
                if not spec.nullable:
                    errors.add(f"{name} line {line} column {column}: empty, a value is required")
                continue
            check = CHECKS.get(spec.type)
            if check and not check[0](value):
                errors.add(f"{name} line {line} column {column}: {value!r} {check[1]}")
        rows.append(row)
        lines.append(line)
    return Parsed(header, rows, lines)


def check_keys(tables: dict[str, Parsed], errors: _ErrorLog) -> None:
    for name, columns in KEYS.items():
        seen: dict[tuple[str, ...], int] = {}
        for row, line in zip(tables[name].rows, tables[name].lines, strict=True):
            key = tuple(row[column] for column in columns)
            if key in seen:
                errors.add(
                    f"{name} line {line} column {', '.join(columns)}: duplicate key {key} "
                    f"(first on line {seen[key]})"
                )
            seen.setdefault(key, line)
    for name in SCHEMAS:
        if not name.startswith("f1db-races-free-practice-"):
            continue
        for column, parent, parent_column in REFERENCES:
            known = {row[parent_column] for row in tables[parent].rows}
            for row, line in zip(tables[name].rows, tables[name].lines, strict=True):
                if row[column] not in known:
                    errors.add(
                        f"{name} line {line} column {column}: {row[column]!r} is not an "
                        f"{parent_column} of {parent}"
                    )


def _entry(name: str, data: bytes, rows: int) -> dict:
    return {"file": name, "rows": rows, "sha256": hashlib.sha256(data).hexdigest()}


def _install(files: dict[str, bytes], rows: dict[str, int], dest: Path, source: str | None) -> dict:
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        staging.chmod(0o755)
        entries = {}
        for name, data in files.items():
            (staging / name).write_bytes(data)
            entries[name] = _entry(name, data, rows[name])
        manifest = {
            "source": redact_source(source) if source else None,
            "attribution": ATTRIBUTION,
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": entries,
            "data_version": _data_version(entries) if source else "none",
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _swap_in(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def empty_files() -> dict[str, bytes]:
    """Header-only files: the same columns as a release, no rows."""
    return {name: (",".join(columns) + "\n").encode() for name, columns in SCHEMAS.items()}


def load_practice(
    source: str | None, dest: Path, *, log: Callable[[str], None] | None = None
) -> dict:
    """Validate the practice files of `source` and install them in `dest`; return the manifest.

    `source` None installs header-only files (no practice data). Raises LoadError, with `dest`
    untouched, when the source is missing or any check fails.
    """
    say = log or (lambda _message: None)
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise LoadError([f"destination {dest} exists and is not a directory"])
    if dest.parent.exists():
        _recover_interrupted_swap(dest)
    if source is None:
        if (dest / MANIFEST).exists():
            # No source this time is not a request to forget the practice data loaded before.
            manifest = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
            say(f"no practice source given: keeping {dest} (from {manifest.get('source')})")
            return manifest
        manifest = _install(empty_files(), dict.fromkeys(SCHEMAS, 0), dest, None)
        say(f"no practice source: header-only files in {dest} (practice features will be null)")
        return manifest
    errors = _ErrorLog()
    files = read_source_files(source, list(SCHEMAS), errors, say, what="practice source")
    tables = {name: parse(name, data, errors) for name, data in files.items()}
    errors.raise_if_any()
    parsed = {name: table for name, table in tables.items() if table is not None}
    check_keys(parsed, errors)
    errors.raise_if_any()
    manifest = _install(files, {name: len(t.rows) for name, t in parsed.items()}, dest, source)
    for name, entry in manifest["tables"].items():
        say(f"  {name:<44} {entry['rows']:>7} rows")
    say(f"loaded practice data into {dest}; data_version {manifest['data_version']}")
    return manifest


def default_dest() -> Path:
    return Path(os.environ.get("PITWALL_PRACTICE_DIR") or REPO_ROOT / "data" / "practice")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        help="f1db release zip (URL or file) or folder of its CSVs (default: "
        f"$PITWALL_PRACTICE_SOURCE; none: no practice data; online: {RELEASE_URL})",
    )
    parser.add_argument(
        "--dest", help="practice folder (default: $PITWALL_PRACTICE_DIR, else data/practice)"
    )
    args = parser.parse_args(argv)
    source = args.source or os.environ.get("PITWALL_PRACTICE_SOURCE") or None
    dest = Path(args.dest) if args.dest else default_dest()
    try:
        load_practice(source, dest, log=print)
    except (LoadError, OSError) as error:
        lines = (
            error.errors if isinstance(error, LoadError) else [f"{type(error).__name__}: {error}"]
        )
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        print(f"practice data in {dest} left unchanged", file=sys.stderr)
        return 2 if isinstance(error, LoadError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
