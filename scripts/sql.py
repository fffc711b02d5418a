"""Run analysts' SQL on the warehouse in a sandbox: python scripts/sql.py "select ...".

The warehouse is opened read-only, and before the query runs DuckDB's external access is turned
off (only the forecast store, $PITWALL_PREDICTIONS_DIR or ./predictions, stays readable: the
`predictions` view reads its Parquet files) and the configuration is locked, so no statement can
turn it back on. Statements that write files or reach other databases (COPY, EXPORT, ATTACH,
INSTALL, ...) are refused before anything runs. To save a result, ask this script to write it:
`--output results.csv` (or `.parquet`); the query itself still cannot write.

Exit codes: 0 ok, 2 bad input (an SQL error, a refused statement or file, a bad --output),
3 busy (another process has the warehouse open for writing), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import duckdb

if __package__ in (None, ""):
    # Run as `python scripts/<name>.py`: make the repository importable, as `python -m` does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models_py.features import WarehouseBusyError, connect_read_only
from models_py.settings import EXIT_BAD_INPUT, EXIT_BUSY, EXIT_INTERRUPTED, EXIT_OK
from scripts.build_warehouse import default_predictions_dir, default_warehouse

OUTPUT_FORMATS = (".csv", ".parquet")
EXPORT_HINT = (
    'save a result with make sql Q="select ..." OUT=results.csv (or .parquet; '
    "scripts/sql.py --output FILE)"
)
# Statements that only read. Every other kind (COPY, EXPORT, ATTACH, INSTALL/LOAD, PREPARE and
# EXECUTE, CREATE, INSERT, ...) is refused before anything runs. DuckDB's sandbox stands behind
# this list, but it cannot tell reading the forecast store from writing into it.
READING_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "SET", "MULTI"})
# Keywords that write files or run a hidden statement, refused inside those other than SELECT
# (EXPLAIN ANALYZE COPY ... runs the COPY; COPY FROM DATABASE parses as a PRAGMA).
WRITING_KEYWORDS = ("copy", "export", "attach", "detach", "install", "load", "prepare", "execute")
STATEMENT_NAMES = {"LOAD": "INSTALL/LOAD", "EXPORT": "EXPORT DATABASE"}


class BadInput(Exception):
    """A bad query or --output; the message says what, in one line."""


class Refused(BadInput):
    """The SQL tried to do what analysts' SQL may not: what, and how to export instead."""

    def __str__(self) -> str:
        return f"refused: {super().__str__()}"


def refused_statement(sql: str) -> str | None:
    """What in `sql` is not allowed (a statement or keyword, in capitals), or None."""
    for statement in duckdb.extract_statements(sql):
        kind = statement.type.name
        if kind not in READING_STATEMENTS:
            return STATEMENT_NAMES.get(kind, kind)
        if kind == "SELECT":
            continue
        text = statement.query
        for offset, token in duckdb.tokenize(text):
            if token != duckdb.token_type.keyword:
                continue
            word = re.match(r"\w*", text[offset:]).group(0).lower()
            if word in WRITING_KEYWORDS:
                return word.upper()
    return None


def sandboxed(warehouse: Path, readable: Path) -> duckdb.DuckDBPyConnection:
    """The warehouse, read-only, with external access off but for `readable`, locked."""
    connection = connect_read_only(warehouse)
    try:
        # The trailing separator keeps a sibling such as predictions-old/ out.
        connection.execute("set allowed_directories = ?", [[str(readable) + os.sep]])
        connection.execute("set enable_external_access = false")
        connection.execute("set lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


def explain(error: duckdb.Error, readable: Path) -> Exception:
    """A sandbox refusal as one line (Refused), or the error as it is."""
    message = str(error)
    if isinstance(error, duckdb.PermissionException):
        found = re.search(r'Cannot access (?:file|directory) "[^"]*"', message)
        what = found.group(0) if found else message.splitlines()[0]
        return Refused(
            f"{what}: SQL run by make sql reads only the warehouse and the forecast store "
            f"({readable}); {EXPORT_HINT}"
        )
    if "configuration has been locked" in message:
        found = re.search(r'Cannot change configuration option "[^"]*"', message)
        what = found.group(0) if found else "Cannot change the configuration"
        return Refused(f"{what}: settings are locked for SQL run by make sql")
    return error


def write_result(relation: duckdb.DuckDBPyRelation, output: Path) -> int:
    """The script, not the query, writes the result: streamed out of the locked connection into
    an unrestricted in-memory one, written beside `output` and renamed over it. Returns rows."""
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    with duckdb.connect() as writer:
        writer.register("query_result", relation.to_arrow_reader())
        writer.execute("create table result as select * from query_result")
        result = writer.table("result")
        try:
            if output.suffix.lower() == ".csv":
                result.write_csv(str(partial))
            else:
                result.write_parquet(str(partial))
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
        [(rows,)] = writer.execute("select count(*) from result").fetchall()
    return rows


def check_output(output: Path, readable: Path) -> None:
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise BadInput(f"--output {output}: the name must end in .csv or .parquet (the format)")
    if not output.parent.is_dir():
        raise BadInput(f"--output {output}: no folder {output.parent}")
    if output.resolve().is_relative_to(readable):
        raise Refused(
            f"--output {output} is inside the forecast store {readable}, which the predictions "
            "view reads: write it elsewhere"
        )


def run(args: argparse.Namespace) -> int:
    readable = default_predictions_dir()
    if args.output is not None:
        check_output(args.output, readable)
    refused = refused_statement(args.query)
    if refused:
        raise Refused(
            f"{refused} is not allowed: SQL run by make sql only reads, and cannot write files "
            f"or reach other databases; {EXPORT_HINT}"
        )
    with sandboxed(args.warehouse, readable) as connection:
        try:
            relation = connection.sql(args.query)
            if args.output is None:
                if relation is not None:
                    relation.show(max_rows=args.max_rows, max_width=250)
                return EXIT_OK
            if relation is None:
                raise BadInput(f"the query returns no rows to write to {args.output}")
            rows = write_result(relation, args.output)
        except duckdb.Error as error:
            raise explain(error, readable) from None
    print(f"wrote {rows} row{'s' if rows != 1 else ''} to {args.output}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 ok, 2 bad input or a refused statement, 3 busy, 130 interrupted.",
    )
    parser.add_argument("query", help='SQL to run, e.g. "select * from podium_features limit 5"')
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB file (default: $PITWALL_DUCKDB or ./pitwall.duckdb)",
    )
    parser.add_argument("--max-rows", type=int, default=50, help="rows to print (default 50)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the query's result to FILE instead of printing it; the format follows the "
        "name: .csv or .parquet (replaced if it exists)",
    )
    args = parser.parse_args(argv)
    args.warehouse = args.warehouse or default_warehouse()
    if not args.warehouse.exists():
        print(f"error: no warehouse at {args.warehouse}: run `make setup` first", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run(args)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WarehouseBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUSY
    except duckdb.Error as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader of the output went away (`| head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
