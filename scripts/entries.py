"""Check the user's entry lists (`entries/*.csv`) before dbt reads them.

An entry list says who is expected to start a race before its qualifying is published: one row
per driver with the team (`year,round,driver_ref,constructor_ref`, plus optional display names
for drivers and teams Ergast does not know yet). dbt reads the files as text; this check makes a
typo fail the refresh with the file, row and column to fix, instead of a cryptic cast error or,
worse, a driver silently missing from the field.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_COLUMNS = ("year", "round", "driver_ref", "constructor_ref")
OPTIONAL_COLUMNS = ("driver_name", "constructor_name")
REFERENCE = re.compile(r"[a-z0-9_]+")


class EntryListError(ValueError):
    """An entry list is malformed; the message names the file, row and column."""


def default_entries_dir() -> Path:
    return Path(os.environ.get("PITWALL_ENTRIES_DIR", REPO_ROOT / "entries")).resolve()


def check_entry_lists(folder: Path) -> int:
    """Raise EntryListError on the first problems found; returns the number of rows checked."""
    problems: list[str] = []
    rows_checked = 0
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            unknown = [n for n in header if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if missing or unknown:
                problems.append(
                    f"{path}: header must be {','.join(REQUIRED_COLUMNS)}[,driver_name]"
                    f"[,constructor_name]; missing {missing}, unknown {unknown}"
                )
                continue
            seen: dict[tuple[str, str, str], int] = {}
            for line, raw in enumerate(reader, start=2):
                row = {key.strip(): (value or "").strip() for key, value in raw.items() if key}
                rows_checked += 1
                for column in ("year", "round"):
                    if not row[column].isdigit():
                        problems.append(
                            f"{path}, row {line}, column {column}: {row[column]!r} is not a number"
                        )
                for column in ("driver_ref", "constructor_ref"):
                    if not REFERENCE.fullmatch(row[column]):
                        problems.append(
                            f"{path}, row {line}, column {column}: {row[column]!r} is not an "
                            "Ergast-style reference (lower case letters, digits, underscores)"
                        )
                key = (row["year"], row["round"], row["driver_ref"])
                if key in seen:
                    problems.append(
                        f"{path}, row {line}: driver {row['driver_ref']!r} is entered twice in "
                        f"{row['year']} round {row['round']} (also row {seen[key]})"
                    )
                seen[key] = line
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise EntryListError(f"entry list problems:\n  {shown}{more}")
    return rows_checked
