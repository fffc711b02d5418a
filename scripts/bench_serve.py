"""Benchmark serving: one race and a whole season, with the served model's code path.

Side by side in one run: the LightGBM booster, its ONNX graph alone (onnxruntime), and the
served pyfunc's `predict` (category encoding, the ONNX graph, the race model, the blend, the
per-race normalisation and P(win) / P(points)), single-race latency p50 / p99 and whole-season
throughput. The model is the holdout fold's blend, fitted with the project defaults. No MLflow.
Needs the warehouse.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from models_py import serving
from models_py.evaluation import CrossValidation
from models_py.features import load_feature_spec, read_features
from models_py.folds import protocol_folds
from models_py.models import blend_recipe, model_matrix
from models_py.settings import Locations, Protocol


def latencies(predict: Callable[[], object], repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=500, help="single-race scorings (500)")
    args = parser.parse_args(argv)
    locations, protocol = Locations.from_environment(), Protocol()
    spec = load_feature_spec(locations.dbt_manifest)
    features = spec.features()
    table = read_features(locations.warehouse, spec, features)
    _, holdout = protocol_folds(protocol, table.seasons_with_results)
    cv = CrossValidation(
        table, features, protocol.window, protocol.calibration_seasons, protocol.seed
    )
    # The served kind: LightGBM's graph beside the race model (P(win), P(points), the blend).
    recipe = blend_recipe(features)
    [result] = cv.run(recipe, [holdout])
    booster = result.model.booster
    served = serving.ServedModel()
    served.recipe, served.categories = recipe, cv.categories
    served.postprocessor = result.postprocessor
    served.race_model = result.model.race_model
    served.session = serving.onnx_session(serving.to_onnx(booster, len(features)))

    past = table.past
    season = past[past["year"] == protocol.test_season].reset_index(drop=True)
    race = season[season["race_id"] == season["race_id"].iloc[-1]].reset_index(drop=True)
    rows = {}
    for label, frame, repeats in (("single race", race, args.repeats), ("season", season, 20)):
        matrix = model_matrix(frame, features, cv.categories).to_numpy(dtype=np.float64)
        inputs = serving.served_input(frame, features)
        rows[label] = {
            "lightgbm booster": latencies(lambda m=matrix: booster.predict(m), repeats),
            "onnxruntime graph": latencies(
                lambda m=matrix: serving.onnx_scores(served.session, m), repeats
            ),
            "served pyfunc predict": latencies(lambda x=inputs: served.predict(None, x), repeats),
        }
    print(f"single race ({len(race)} rows), {args.repeats} scorings:")
    print(f"{'engine':<24}{'p50 ms':>10}{'p99 ms':>10}")
    for label, timings in rows["single race"].items():
        p99 = float(np.percentile(timings, 99))
        print(f"{label:<24}{statistics.median(timings):>10.3f}{p99:>10.3f}")
    single = {label: statistics.median(t) for label, t in rows["single race"].items()}
    print(
        f"booster / onnx p50: {single['lightgbm booster'] / single['onnxruntime graph']:.2f}x; "
        f"served / onnx: {single['served pyfunc predict'] / single['onnxruntime graph']:.2f}x"
    )
    print(f"\nwhole season {protocol.test_season} ({len(season)} rows), median of 20:")
    for label, timings in rows["season"].items():
        median = statistics.median(timings)
        print(f"{label:<24}{len(season) / median * 1000:>12,.0f} rows/s ({median:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
