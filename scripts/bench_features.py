"""Benchmark the feature warehouse: full `dbt build` wall time and the feature SQL alone.

Prints, measured side by side in one run:
- full `dbt build` (seeds, models, data tests, unit tests) into a fresh file, median of N runs;
- `dbt build` of models and seeds only, median of N runs;
- the time DuckDB takes to compute `podium_features` from the staged tables alone (the compiled
  SQL of the mart, executed over the intermediate views), median of M runs;
and the ratios between them. Target: full `dbt build` under 20 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from scripts.build_warehouse import SKIP_TESTS, build
from scripts.load_data import load

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 20.0


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default=os.environ.get(
            "PITWALL_DATA_SOURCE", str(REPO_ROOT.parent / "shared" / "data" / "f1")
        ),
        help="raw data source for the loader (default: $PITWALL_DATA_SOURCE or ../shared/data/f1)",
    )
    parser.add_argument("--builds", type=int, default=3, help="dbt builds per variant (default 3)")
    parser.add_argument("--queries", type=int, default=10, help="feature SQL runs (default 10)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pitwall-bench-") as scratch:
        folder = Path(scratch)
        raw_dir = folder / "raw"
        load(args.source, raw_dir)
        warehouse = folder / "bench.duckdb"
        target = folder / "target"

        full = [
            timed(lambda: build(warehouse, raw_dir, ["--quiet"], target_path=target))
            for _ in range(args.builds)
        ]
        models_only = [
            timed(lambda: build(warehouse, raw_dir, [*SKIP_TESTS, "--quiet"], target_path=target))
            for _ in range(args.builds)
        ]

        compiled = target / "compiled" / "pitwall" / "models" / "marts" / "podium_features.sql"
        feature_sql = compiled.read_text()
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            [(rows,)] = connection.execute(f"select count(*) from ({feature_sql})").fetchall()
            feature_query = [
                timed(
                    lambda: connection.execute(f"select count(*) from ({feature_sql})").fetchall()
                )
                for _ in range(args.queries)
            ]

    full_median = statistics.median(full)
    models_median = statistics.median(models_only)
    query_median = statistics.median(feature_query)
    print(f"{'measure':<48}{'median s':>10}{'runs':>6}")
    print(f"{'dbt build, models + seeds + all tests':<48}{full_median:>10.2f}{len(full):>6}")
    print(f"{'dbt build, models + seeds only':<48}{models_median:>10.2f}{len(models_only):>6}")
    query_label = "podium_features SQL from staged tables"
    print(f"{query_label:<48}{query_median:>10.3f}{len(feature_query):>6}")
    print(f"rows in podium_features: {rows}")
    print(f"tests' share of the full build: {1 - models_median / full_median:.0%}")
    print(f"feature SQL / full build: {query_median / full_median:.1%}")
    verdict = "meets" if full_median < TARGET_SECONDS else "MISSES"
    print(
        f"full build {full_median:.1f} s {verdict} the {TARGET_SECONDS:.0f} s target "
        f"({full_median / TARGET_SECONDS:.0%} of it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
