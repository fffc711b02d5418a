"""The weekly refresh: fetch the sources, validate, rebuild the warehouse, say what changed.

`make refresh` runs this after every race weekend (and on Saturday morning for practice): the
Ergast tables from $PITWALL_DATA_SOURCE, the f1db practice sessions from
$PITWALL_PRACTICE_SOURCE (optional), the user's entry lists (`entries/`), then `dbt build` into a
fresh file swapped in only when every test passes. What it prints is what a user needs to act on:
races that gained results, drivers, teams, circuits and statuses seen for the first time (and the
seed file to curate when a value fell back to its default), and the next race with where its
entrants come from. A failed step leaves the warehouse as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.build_warehouse import (
    SKIP_TESTS,
    BuildError,
    build,
    default_practice_dir,
    default_raw_dir,
    default_warehouse,
    ensure_not_in_use,
)
from scripts.load_data import DEFAULT_SOURCE, LoadError, load
from scripts.load_practice import load_practice

EXIT_OK, EXIT_BAD_INPUT, EXIT_BUSY, EXIT_INTERRUPTED = 0, 2, 3, 130

# What a refresh compares, each a query on tables every build has: (label, sql of key, text).
CATALOGUE = {
    "races with results": (
        "select race_id, format('{} R{} {}', year, round, race_name) from podium_features "
        "where not is_upcoming group by all"
    ),
    "drivers": (
        "select driver_ref, format('{} ({})', driver_name, driver_ref) from podium_features "
        "group by all"
    ),
    "teams": (
        "select constructor_ref, format('{} ({})', constructor_name, constructor_ref) "
        "from podium_features group by all"
    ),
    "circuits": "select circuit_ref, format('{} ({})', circuit_name, country) from "
    "stg_ergast__circuits",
    "statuses": "select cast(status_id as varchar), status from stg_ergast__status",
}
NEXT_RACE = """
    select year, round, race_name, race_date, any_value(entrant_source), count(*),
        bool_or(official_standings_source = 'computed_from_results')
    from podium_features where is_upcoming group by all
"""


@dataclass
class Snapshot:
    """What the warehouse knows: for each catalogue entry, key → display text."""

    known: dict[str, dict[str, str]] = field(default_factory=dict)
    next_race: tuple | None = None
    uncurated: list[tuple] = field(default_factory=list)

    @classmethod
    def of(cls, warehouse: Path) -> Snapshot:
        if not warehouse.exists():
            return cls()
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            tables = {row[0] for row in connection.execute("show tables").fetchall()}
            known = {
                label: {str(key): text for key, text in connection.execute(sql).fetchall()}
                for label, sql in CATALOGUE.items()
            }
            upcoming = connection.execute(NEXT_RACE).fetchall()
            uncurated = (
                connection.execute(
                    "select seed_file, column_name, value from uncurated_values order by all"
                ).fetchall()
                if "uncurated_values" in tables
                else []
            )
        return cls(known, upcoming[0] if upcoming else None, uncurated)


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """The lines a user reads after a refresh."""
    lines: list[str] = []
    for label, now in after.known.items():
        was = before.known.get(label, {})
        new = [text for key, text in now.items() if key not in was]
        if not was:
            lines.append(f"{label}: {len(now)} (first build)")
        elif new:
            shown = ", ".join(sorted(new)[:12]) + (" ..." if len(new) > 12 else "")
            lines.append(f"new {label} ({len(new)}): {shown}")
        else:
            lines.append(f"new {label}: none")
    for seed_file, column, value in after.uncurated:
        lines.append(
            f"to curate: {column} {value!r} is not in {seed_file} (its documented fallback is used "
            "until you add it; see docs/data.md)"
        )
    if after.next_race is None:
        lines.append("next race: none scheduled after the last race with results")
    else:
        year, round_, name, date, source, entrants, computed_standings = after.next_race
        note = {
            "qualifying": "its qualifying classification",
            "entry_list": f"your entry list (entries/{year}.csv)",
            "last_race": f"the last race's pairs: add entries/{year}.csv if the field changes",
        }.get(source, source)
        lines.append(
            f"next race: {year} R{round_} {name} on {date}, {entrants} entrants from {note}"
        )
        if computed_standings:
            lines.append(
                "standings: the last race's are not published yet; its championship table is "
                "computed from the results (official_standings_source = 'computed_from_results')"
            )
    return lines


def refresh(
    data_source: str,
    practice_source: str | None,
    raw_dir: Path,
    practice_dir: Path,
    warehouse: Path,
    skip_tests: bool = False,
    target_path: Path | None = None,
) -> list[str]:
    # Before anything is loaded: a refresh that cannot swap the warehouse in changes nothing.
    ensure_not_in_use(warehouse)
    before = Snapshot.of(warehouse)
    started = time.perf_counter()
    print(f"loading {data_source}", flush=True)
    load(data_source, raw_dir, log=lambda line: None)
    if practice_source:
        print(f"loading practice {practice_source}", flush=True)
    load_practice(practice_source, practice_dir)
    print("building the warehouse (dbt build)", flush=True)
    summary = build(
        warehouse,
        raw_dir,
        SKIP_TESTS if skip_tests else [],
        target_path=target_path,
        practice_dir=practice_dir,
    )
    after = Snapshot.of(warehouse)
    return [
        f"warehouse {warehouse} refreshed in {time.perf_counter() - started:.0f} s; {summary}",
        *changes(before, after),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default=os.environ.get("PITWALL_DATA_SOURCE") or DEFAULT_SOURCE,
        help="Ergast tables: folder, zip or URL (default: $PITWALL_DATA_SOURCE, else the mirror)",
    )
    parser.add_argument(
        "--practice-source",
        default=os.environ.get("PITWALL_PRACTICE_SOURCE") or None,
        help="f1db practice: folder, zip or URL (default: $PITWALL_PRACTICE_SOURCE; none: keep "
        "what is loaded)",
    )
    parser.add_argument("--skip-tests", action="store_true", help="build without dbt tests")
    args = parser.parse_args(argv)
    warehouse = default_warehouse()
    try:
        lines = refresh(
            args.source,
            args.practice_source,
            default_raw_dir(),
            default_practice_dir(),
            warehouse,
            args.skip_tests,
        )
    except LoadError as error:
        for line in error.errors:
            print(f"error: {line}", file=sys.stderr)
        print(f"the data and the warehouse at {warehouse} are unchanged", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        for line in error.details:
            print(f"  {line}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"interrupted; the warehouse at {warehouse} is unchanged", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
