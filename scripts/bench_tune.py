"""Benchmark the study: `--trials` trials over the 24 CV folds, as `train.py tune` runs them.

The same objective (`tuning.Objective`, the CV protocol training runs) in an in-memory study
that starts from the served defaults as `tune` does, without MLflow: with the Wilcoxon pruner,
and with `--unpruned` also without it, side by side (same seed). Prints wall time, trials per
minute, pruned trials and the best CV Brier, against the target of 50 trials in 300 s on 2
cores. Needs the warehouse (`make setup`).
"""

from __future__ import annotations

import argparse
import time

import optuna

from models_py import tuning
from models_py.evaluation import CrossValidation
from models_py.features import load_feature_spec, read_features
from models_py.folds import protocol_folds
from models_py.settings import Locations, Protocol

TARGET_SECONDS = 300


def study_figures(
    cv: CrossValidation, folds: list, trials: int, seed: int, pruned: bool
) -> tuple[float, float, int]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=tuning.pruner() if pruned else optuna.pruners.NopPruner(),
    )
    tuning.start_from_defaults(study)
    started = time.perf_counter()
    study.optimize(
        tuning.Objective(cv, folds), n_trials=trials, callbacks=[tuning.Progress(trials)]
    )
    seconds = time.perf_counter() - started
    pruned_count = sum(1 for trial in study.trials if trial.state.name == "PRUNED")
    return seconds, study.best_value, pruned_count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="trials per study (default 50)")
    parser.add_argument("--unpruned", action="store_true", help="also run without pruning")
    args = parser.parse_args(argv)
    locations, protocol = Locations.from_environment(), Protocol()
    spec = load_feature_spec(locations.dbt_manifest)
    features = spec.features()
    table = read_features(locations.warehouse, spec, features)
    folds, _ = protocol_folds(protocol, table.seasons_with_results)
    cv = CrossValidation(
        table,
        features,
        protocol.window,
        protocol.calibration_seasons,
        protocol.seed,
        protocol.workers,
    )
    rows = {}
    for pruned in (True, False) if args.unpruned else (True,):
        label = "Wilcoxon pruner" if pruned else "no pruner"
        print(f"{label}: {args.trials} trials over {len(folds)} folds", flush=True)
        rows[label] = study_figures(cv, folds, args.trials, protocol.seed, pruned)
    print(f"\n{'study':<18}{'seconds':>9}{'trials/min':>12}{'pruned':>8}{'best brier':>12}")
    for label, (seconds, best, pruned_count) in rows.items():
        print(
            f"{label:<18}{seconds:>9.0f}{args.trials / seconds * 60:>12.1f}"
            f"{pruned_count:>8}{best:>12.5f}"
        )
    seconds = rows["Wilcoxon pruner"][0]
    print(
        f"target {args.trials} trials in {TARGET_SECONDS} s: "
        f"{'met' if seconds <= TARGET_SECONDS else 'MISSED'} ({seconds / TARGET_SECONDS:.0%})"
    )
    if "no pruner" in rows:
        print(
            f"pruning: {rows['no pruner'][0] / seconds:.2f}x faster, best Brier difference "
            f"{rows['Wilcoxon pruner'][1] - rows['no pruner'][1]:+.5f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
