"""Benchmark tuning and serving, side by side in one run.

- Optuna: the same 24-fold study (same seed, same trial budget) with the median pruner and
  without: wall time, trials per minute, best mean Brier of each.
- Scoring one race (~20 rows): latency p50 / p99 of onnxruntime vs the LightGBM booster.
- Batch: rows per second for a whole season with each.

Needs the warehouse (`make setup`). No MLflow: these are the engines' own costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import optuna

from models_py import onnx_export
from models_py.config import TrainConfig, default_dbt_manifest, default_raw_dir, default_warehouse
from models_py.dataset import load_feature_spec, read_features
from models_py.folds import protocol_folds
from models_py.modelling import DEFAULT_LGBM_PARAMS, LightGBMModel
from models_py.postprocessing import ProbabilityPostProcessor
from models_py.probability import PlattCalibration
from models_py.tuning import Objective, prepare_folds, run_study


def study_figures(
    prepared, calibration_seasons: int, trials: int, seed: int, threads: int, pruned: bool
) -> tuple[float, float, int]:
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
        if pruned
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    objective = Objective(
        prepared,
        seed,
        threads,
        trials,
        log_to_mlflow=False,
        postprocessor=ProbabilityPostProcessor(),
        calibration_seasons=calibration_seasons,
    )
    started = time.perf_counter()
    run_study(study, objective, trials)
    seconds = time.perf_counter() - started
    pruned_count = sum(1 for trial in study.trials if trial.state.name == "PRUNED")
    return seconds, study.best_value, pruned_count


def latencies(predict, rows: np.ndarray, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(rows)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="trials per study (default 50)")
    parser.add_argument(
        "--repeats", type=int, default=500, help="single-race scorings (default 500)"
    )
    parser.add_argument("--skip-tuning", action="store_true", help="only the serving figures")
    args = parser.parse_args(argv)

    config = TrainConfig(
        warehouse=default_warehouse(),
        dbt_manifest=default_dbt_manifest(),
        raw_dir=default_raw_dir(),
    )
    spec = load_feature_spec(config.dbt_manifest)
    data = read_features(config.warehouse, spec)
    folds, holdout = protocol_folds(config, data.seasons_with_results)
    past = data.past

    if not args.skip_tuning:
        prepared = prepare_folds(data, folds, config.calibration_seasons)
        print(f"Optuna, {args.trials} trials over {len(folds)} folds, {config.threads} threads:")
        rows = {}
        for pruned in (True, False):
            rows[pruned] = study_figures(
                prepared,
                config.calibration_seasons,
                args.trials,
                config.seed,
                config.threads,
                pruned,
            )
        print(f"{'study':<12}{'seconds':>10}{'trials/min':>12}{'best brier':>12}{'pruned':>8}")
        for pruned, (seconds, best, pruned_count) in rows.items():
            label = "pruned" if pruned else "unpruned"
            print(
                f"{label:<12}{seconds:>10.0f}{args.trials / seconds * 60:>12.1f}"
                f"{best:>12.5f}{pruned_count:>8}"
            )
        speedup = rows[False][0] / rows[True][0]
        print(
            f"pruning: {speedup:.2f}x faster; best Brier difference (pruned - unpruned) "
            f"{rows[True][1] - rows[False][1]:+.5f}; 10-minute target "
            f"{'met' if rows[True][0] < 600 else 'MISSED'} ({rows[True][0] / 600:.0%} of it)"
        )

    train = past[past["year"].isin(holdout.train_years)]
    model = LightGBMModel(
        categorical=data.categorical,
        seed=config.seed,
        threads=config.threads,
        hyperparameters=dict(DEFAULT_LGBM_PARAMS),
    ).fit(train[data.features], train[spec.target].to_numpy(dtype=int))
    assert model.booster is not None
    runtime = onnx_export.session(onnx_export.convert(model.booster, len(data.features)))
    season = past[past["year"] == config.test_season][data.features]
    race_id = past.loc[past["year"] == config.test_season, "race_id"].iloc[-1]
    race = past[past["race_id"] == race_id][data.features]
    race_matrix = race.to_numpy(dtype=np.float32)

    onnx_ms = latencies(lambda rows: onnx_export.predict(runtime, rows), race_matrix, args.repeats)
    booster_ms = latencies(model.booster.predict, race, args.repeats)
    # What `predict` runs: the ONNX booster, then calibration and per-race normalisation.
    postprocessor = ProbabilityPostProcessor(calibration=PlattCalibration(1.0, 0.0))
    race_ids = np.full(len(race), race_id)
    served_ms = latencies(
        lambda rows: postprocessor.apply(race_ids, onnx_export.predict(runtime, rows)),
        race_matrix,
        args.repeats,
    )
    print(f"\nsingle race ({len(race)} rows), {args.repeats} scorings:")
    print(f"{'engine':<28}{'p50 ms':>10}{'p99 ms':>10}")
    for label, timings in (
        ("onnxruntime", onnx_ms),
        ("lightgbm", booster_ms),
        ("onnxruntime + post-process", served_ms),
    ):
        p99 = float(np.percentile(timings, 99))
        print(f"{label:<28}{statistics.median(timings):>10.3f}{p99:>10.3f}")
    ratio = statistics.median(booster_ms) / statistics.median(onnx_ms)
    print(f"lightgbm / onnxruntime p50: {ratio:.2f}x")

    season_matrix = season.to_numpy(dtype=np.float32)
    onnx_batch = statistics.median(
        latencies(lambda r: onnx_export.predict(runtime, r), season_matrix, 20)
    )
    booster_batch = statistics.median(latencies(model.booster.predict, season, 20))
    print(f"\nwhole season {config.test_season} ({len(season)} rows), median of 20:")
    print(f"onnxruntime {len(season) / onnx_batch * 1000:>12,.0f} rows/s ({onnx_batch:.2f} ms)")
    print(
        f"lightgbm    {len(season) / booster_batch * 1000:>12,.0f} rows/s ({booster_batch:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
