"""Benchmark training: one full 24-fold CV of the default podium model, and one fold.

Reads the warehouse (`make setup` first) and the dbt manifest; trains without MLflow so that the
figures are the model's own cost. Prints medians over repeats and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

from models_py.config import TrainConfig, default_dbt_manifest, default_raw_dir, default_warehouse
from models_py.dataset import load_feature_spec, read_features
from models_py.evaluation import fit_and_score, summarize
from models_py.folds import protocol_folds
from models_py.modelling import LightGBMModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="repeats of each measure (default 3)"
    )
    args = parser.parse_args(argv)
    config = TrainConfig(
        warehouse=default_warehouse(),
        dbt_manifest=default_dbt_manifest(),
        raw_dir=default_raw_dir(),
    )
    started = time.perf_counter()
    spec = load_feature_spec(config.dbt_manifest)
    data = read_features(config.warehouse, spec)
    read_seconds = time.perf_counter() - started
    folds, _ = protocol_folds(config, data.seasons_with_results)

    def make() -> LightGBMModel:
        return LightGBMModel(categorical=data.categorical, seed=config.seed, threads=config.threads)

    def one_fold() -> float:
        begin = time.perf_counter()
        fit_and_score(make, data, folds[-1])
        return time.perf_counter() - begin

    def full_cv() -> tuple[float, dict[str, float]]:
        begin = time.perf_counter()
        results = [fit_and_score(make, data, fold) for fold in folds]
        return time.perf_counter() - begin, summarize(results)

    fold_times = [one_fold() for _ in range(args.repeats)]
    cv_runs = [full_cv() for _ in range(args.repeats)]
    cv_times = [seconds for seconds, _ in cv_runs]
    summary = cv_runs[0][1]
    fold_median, cv_median = statistics.median(fold_times), statistics.median(cv_times)
    print(f"{'measure':<44}{'median s':>10}{'runs':>6}")
    print(f"{'read podium_features (SQL, read-only)':<44}{read_seconds:>10.2f}{1:>6}")
    print(f"{f'one fold ({folds[-1].describe()})':<44}{fold_median:>10.2f}{args.repeats:>6}")
    print(f"{f'full CV, {len(folds)} folds':<44}{cv_median:>10.2f}{args.repeats:>6}")
    print(f"full CV / one fold: {cv_median / fold_median:.1f}x over {len(folds)} folds")
    print(
        f"default model, {len(folds)} folds: CV AUC {summary['cv_auc_mean']:.4f} "
        f"Brier {summary['cv_brier_mean']:.4f} (threads {config.threads})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
