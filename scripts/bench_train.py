"""Benchmark the default training's CV: 24 folds + the holdout, measured side by side.

- the podium model's parameters before (600 rounds at 0.006) and now (`DEFAULT_LGBM_PARAMS`);
- one fold at a time on 2 LightGBM threads (the old setup) against two folds side by side on
  one thread each (`Protocol.workers`, what `train.py` and `tune` run);
- the blend after LightGBM, as `train.py` runs it: the race model's fits and the blend's
  post-processing on top of the LightGBM fits it reuses.
Each row is the median of `--repeats` runs over prebuilt fold datasets (built once, as a study
reuses them), with its CV and holdout Brier. No MLflow: the figures are the models' own cost.
Needs the warehouse (`make setup`).
"""

from __future__ import annotations

import argparse
import statistics
import time

from models_py.evaluation import CrossValidation, summarize
from models_py.features import load_feature_spec, read_features
from models_py.folds import protocol_folds
from models_py.models import DEFAULT_LGBM_PARAMS, blend_recipe, podium_recipe
from models_py.settings import Locations, Protocol

BEFORE_PARAMS = {
    "n_estimators": 600,
    "learning_rate": 0.006,
    "num_leaves": 15,
    "min_child_samples": 300,
    "subsample": 0.7,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_alpha": 1.0,
    "reg_lambda": 5.0,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (default 3)")
    args = parser.parse_args(argv)
    locations, protocol = Locations.from_environment(), Protocol()
    started = time.perf_counter()
    spec = load_feature_spec(locations.dbt_manifest)
    features = spec.features()
    table = read_features(locations.warehouse, spec, features)
    read_seconds = time.perf_counter() - started
    folds, holdout = protocol_folds(protocol, table.seasons_with_results)
    setups = {
        (workers, threads): CrossValidation(
            table,
            features,
            protocol.window,
            protocol.calibration_seasons,
            protocol.seed,
            workers=workers,
            threads=threads,
        )
        for workers, threads in ((1, 2), (2, 1))
    }
    for cv in setups.values():  # build every fold's dataset once, outside the timings
        cv.run(podium_recipe(features, {"n_estimators": 1}), [*folds, holdout])

    rows = []
    for label, params in (("before", BEFORE_PARAMS), ("now", DEFAULT_LGBM_PARAMS)):
        recipe = podium_recipe(features, params)
        for (workers, threads), cv in setups.items():
            timings, results = [], []
            for _ in range(args.repeats):
                cv.forget_fits()
                begin = time.perf_counter()
                results = cv.run(recipe, [*folds, holdout])
                timings.append(time.perf_counter() - begin)
            summary = summarize(results[:-1])
            rows.append(
                (
                    f"{label} params, {workers} fold(s) x {threads} thread(s)",
                    statistics.median(timings),
                    summary["cv_brier_mean"],
                    results[-1].metrics["brier"],
                )
            )
    print(f"read podium_features (SQL, read-only): {read_seconds:.2f} s")
    print(f"{len(folds)} CV folds + holdout {protocol.test_season}, median of {args.repeats}:")
    print(f"{'setup':<40}{'seconds':>9}{'cv brier':>10}{'holdout':>9}")
    for label, seconds, cv_brier, holdout_brier in rows:
        print(f"{label:<40}{seconds:>9.2f}{cv_brier:>10.5f}{holdout_brier:>9.5f}")
    old, new = rows[0][1], rows[-1][1]
    print(
        f"now / before: {new / old:.2f} of the time ({old / new:.1f}x faster); "
        f"side-by-side folds alone: {rows[2][1] / rows[3][1]:.2f}x"
    )
    # What `python train.py` adds for the blend: the race model's fits and the blend's
    # post-processing, on top of the LightGBM fits it reuses from the `lgbm` run.
    cv = setups[(2, 1)]
    lightgbm, blended = [], []
    for _ in range(args.repeats):
        cv.forget_fits()
        begin = time.perf_counter()
        cv.run(podium_recipe(features), [*folds, holdout])
        middle = time.perf_counter()
        results = cv.run(blend_recipe(features), [*folds, holdout])
        lightgbm.append(middle - begin)
        blended.append(time.perf_counter() - middle)
    summary = summarize(results[:-1])
    print(
        f"blend after LightGBM (2 folds x 1 thread): {statistics.median(blended):.2f} s on top "
        f"of LightGBM's {statistics.median(lightgbm):.2f} s "
        f"({statistics.median(blended) / statistics.median(lightgbm):.2f}x); "
        f"cv brier {summary['cv_brier_mean']:.5f}, holdout {results[-1].metrics['brier']:.5f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
