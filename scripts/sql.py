"""Run plain SQL against the warehouse, read-only: python scripts/sql.py "select ..."."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("query", help='SQL to run, e.g. "select * from podium_features limit 5"')
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=Path(os.environ.get("PITWALL_DUCKDB", REPO_ROOT / "pitwall.duckdb")),
        help="DuckDB file (default: $PITWALL_DUCKDB or ./pitwall.duckdb)",
    )
    parser.add_argument("--max-rows", type=int, default=50, help="rows to print (default 50)")
    args = parser.parse_args(argv)
    if not args.warehouse.exists():
        print(f"error: no warehouse at {args.warehouse}: run `make setup` first", file=sys.stderr)
        return 1
    # Read-only: never blocks a refresh, and a typo cannot change the warehouse.
    with duckdb.connect(str(args.warehouse), read_only=True) as connection:
        try:
            relation = connection.sql(args.query)
        except duckdb.Error as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if relation is not None:
            relation.show(max_rows=args.max_rows, max_width=250)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
