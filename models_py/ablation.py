"""`python train.py ablation`: the forecast-quality levers added one at a time, on the same folds.

Each step is one nested MLflow run under an `ablation` parent, and changes exactly one thing
from the step before: the leak-free seed recipe (issue 3's features, class weighting, the old
defaults, raw probabilities), then no class weight, calibration, per-race normalisation, the
regularised defaults, each feature group of the dbt YAML in turn, the widened tuning, and the
race-coherent challenger. Candidate groups (`feature: false` in the YAML) are measured on top of
the step before and not kept for the next steps. The parent holds the table of every step.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import mlflow
import pandas as pd

from models_py.candidates import NAIVE_BASELINE, baselines, tree_params
from models_py.config import TrainConfig
from models_py.dataset import DatasetError, FeatureData, load_feature_spec, read_features
from models_py.evaluation import FoldDataError, FoldResult, SeasonRunner, folds_better, summarize
from models_py.folds import Fold, FoldError, protocol_folds
from models_py.modelling import (
    DEFAULT_LGBM_PARAMS,
    LightGBMModel,
    LightGBMRanker,
    PodiumModel,
)
from models_py.plots import ablation_plot
from models_py.postprocessing import (
    RAW,
    PlackettLucePostProcessor,
    PostProcessor,
    ProbabilityPostProcessor,
)
from models_py.tracking import (
    StoreBusyError,
    artifact_folder,
    common_tags,
    configure,
    lock_local_store,
    log_frame,
    log_params,
    redact_url,
    tracked_run,
)
from models_py.tuning import StudyMismatchError, tune

BASE_GROUP = "base"
UNGATED = "_ungated"
WEEKEND_COLUMN = "practice_sessions_before_qualifying"
# Issue 3's defaults, the seed recipe's parameters: a moderate learning rate and bagging.
SEED_RECIPE_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}


@dataclass(frozen=True)
class Recipe:
    """Everything one ablation step decides."""

    features: tuple[str, ...]
    params: dict[str, Any]
    scale_pos_weight: float | None  # None: negatives / positives (class weighting)
    calibrate: bool = False
    normalise: bool = False
    ranker: bool = False

    def postprocessor(self) -> PostProcessor:
        if self.ranker:
            return PlackettLucePostProcessor()
        if not (self.calibrate or self.normalise):
            return RAW
        return ProbabilityPostProcessor(calibrate=self.calibrate, normalise=self.normalise)

    def model_factory(self, data: FeatureData, config: TrainConfig) -> Callable[[], PodiumModel]:
        params, _ = tree_params(self.params)
        categorical = data.with_features(self.features).categorical
        if self.ranker:
            return lambda: LightGBMRanker(
                categorical=categorical,
                seed=config.seed,
                threads=config.threads,
                hyperparameters=dict(params),
            )
        return lambda: LightGBMModel(
            categorical=categorical,
            seed=config.seed,
            threads=config.threads,
            hyperparameters=dict(params),
            scale_pos_weight=self.scale_pos_weight,
        )


@dataclass(frozen=True)
class StepResult:
    name: str
    lever: str
    kept: bool
    recipe: Recipe
    results: list[FoldResult]
    holdout: FoldResult
    summary: dict[str, float]


def evaluate_recipe(
    recipe: Recipe, config: TrainConfig, data: FeatureData, folds: list[Fold], holdout: Fold
) -> tuple[list[FoldResult], FoldResult]:
    subset = data.with_features(recipe.features)
    runner = SeasonRunner(
        recipe.model_factory(subset, config),
        recipe.postprocessor,
        subset,
        config.window,
        config.calibration_seasons,
    )
    return [runner.result(fold) for fold in folds], runner.result(holdout)


def weekend_types(data: FeatureData) -> pd.Series | None:
    """Race id → "one session" / "several sessions" before qualifying (practice data only)."""
    if WEEKEND_COLUMN not in data.frame:
        return None
    sessions = data.frame.groupby("race_id")[WEEKEND_COLUMN].max().dropna()
    return sessions.map(lambda count: "one session" if count < 2 else "several sessions")


def brier_by_weekend(results: list[FoldResult], weekend: pd.Series) -> dict[str, float]:
    """Pooled CV Brier on the races of each weekend type."""
    pooled = pd.concat([result.predictions for result in results], ignore_index=True)
    kind = pooled["race_id"].map(weekend).fillna("no practice data")
    squared = (pooled["probability"] - pooled["actual"]) ** 2
    return {
        f"brier_{name.replace(' ', '_')}": float(squared[kind == name].mean())
        for name in ("one session", "several sessions", "no practice data")
        if (kind == name).any()
    }


def step_row(
    step: StepResult,
    previous: StepResult | None,
    naive: list[FoldResult],
    weekend: pd.Series | None = None,
) -> dict:
    summary = step.summary
    row = {
        "step": step.name,
        "lever": step.lever,
        "kept": "yes" if step.kept else "no (measured only)",
        "features": len(step.recipe.features),
        "cv_brier": summary["cv_brier_mean"],
        "cv_log_loss": summary["cv_log_loss_mean"],
        "cv_auc": summary["cv_auc_mean"],
        "holdout_brier": summary["holdout_brier"],
        "folds_beating_naive": folds_better(step.results, naive),
    }
    if previous is not None:
        row |= {
            "delta_brier": summary["cv_brier_mean"] - previous.summary["cv_brier_mean"],
            "delta_log_loss": summary["cv_log_loss_mean"] - previous.summary["cv_log_loss_mean"],
            "folds_improved": folds_better(step.results, previous.results),
        }
    if weekend is not None and not weekend.empty:
        row |= brier_by_weekend(step.results, weekend)
    return row


def ablation_steps(
    spec_groups: list[str], candidate_groups: list[str], data: FeatureData
) -> list[tuple[str, str, Callable[[Recipe], Recipe], bool]]:
    """(name, lever, change to the previous recipe, kept) for every step after the seed."""
    steps: list[tuple[str, str, Callable[[Recipe], Recipe], bool]] = [
        ("no class weight", "scale_pos_weight 1", lambda r: replace(r, scale_pos_weight=1.0), True),
        ("calibration", "Platt on earlier seasons", lambda r: replace(r, calibrate=True), True),
        ("normalisation", "each race sums to 3", lambda r: replace(r, normalise=True), True),
        (
            "regularised defaults",
            "project default parameters",
            lambda r: replace(r, params=dict(DEFAULT_LGBM_PARAMS)),
            True,
        ),
    ]
    spec = data.spec

    def adding(group: str) -> Callable[[Recipe], Recipe]:
        return lambda r: replace(r, features=(*r.features, *spec.group_features(group)))

    variants = {
        group.removesuffix(UNGATED): group for group in candidate_groups if group.endswith(UNGATED)
    }
    for group in spec_groups:
        if group in variants:
            # An ungated variant is measured in place of its gated group, on the same base.
            steps.append(
                (
                    f"+ {variants[group]}",
                    "candidate: without the gate",
                    adding(variants[group]),
                    False,
                )
            )
        steps.append((f"+ {group}", "feature group", adding(group), True))
    for group in candidate_groups:
        if group not in variants.values():
            steps.append((f"+ {group}", "candidate feature group", adding(group), False))
    return steps


def run_step(
    name: str,
    lever: str,
    kept: bool,
    recipe: Recipe,
    config: TrainConfig,
    data: FeatureData,
    folds: list[Fold],
    holdout: Fold,
) -> StepResult:
    started = time.perf_counter()
    with tracked_run(run_name=f"ablation: {name}", nested=True):
        results, holdout_result = evaluate_recipe(recipe, config, data, folds, holdout)
        summary = summarize(results) | {
            f"holdout_{key}": value for key, value in holdout_result.metrics.items()
        }
        log_params(
            {
                "step": name,
                "lever": lever,
                "kept": kept,
                "features": ",".join(recipe.features),
                "params": recipe.params,
                "scale_pos_weight": recipe.scale_pos_weight or "negatives/positives",
                "postprocessing": recipe.postprocessor().describe(),
                "model": "lambdarank" if recipe.ranker else "binary",
            }
        )
        mlflow.log_metrics(summary)
        for result in results:
            mlflow.log_metric("fold_brier", result.metrics["brier"], step=result.fold.valid_year)
    print(
        f"  {name:<26} CV brier {summary['cv_brier_mean']:.4f} "
        f"log loss {summary['cv_log_loss_mean']:.4f}; holdout {summary['holdout_brier']:.4f} "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return StepResult(name, lever, kept, recipe, results, holdout_result, summary)


def markdown_table(frame: pd.DataFrame) -> str:
    """The table as Markdown, for the closing note and the README (no extra dependency)."""

    counts = {"features", "folds_beating_naive", "folds_improved"}

    def cell(column: str, value: object) -> str:
        if isinstance(value, float):
            if pd.isna(value):
                return ""
            return f"{value:.0f}" if column in counts else f"{value:.4f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(map(cell, frame.columns, row)) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def run_ablation(config: TrainConfig, data: FeatureData, folds: list[Fold], holdout: Fold) -> int:
    session = uuid.uuid4().hex[:12]
    tags = common_tags(config, data, session=session)
    spec = data.spec
    default_groups = list(dict.fromkeys(spec.groups[name] for name in spec.features))
    candidate_groups = [
        group for group in dict.fromkeys(spec.groups.values()) if group not in default_groups
    ]
    feature_groups = [group for group in default_groups if group != BASE_GROUP]
    table: list[dict] = []
    weekend = weekend_types(data)
    with tracked_run(run_name="ablation", tags={**tags, "pitwall.role": "ablation"}):
        log_params(
            {
                "window": config.window,
                "cv_valid_seasons": ",".join(str(fold.valid_year) for fold in folds),
                "test_season": config.test_season,
                "calibration_seasons": config.calibration_seasons,
                "trials": config.trials,
            }
        )
        naive_candidate = next(c for c in baselines(config, data) if c.name == NAIVE_BASELINE)
        naive_runner = SeasonRunner(
            naive_candidate.make, naive_candidate.postprocessor, data, config.window
        )
        naive = [naive_runner.result(fold) for fold in folds]
        naive_holdout = naive_runner.result(holdout)
        naive_summary = summarize(naive)
        table.append(
            {
                "step": "naive rule (reference)",
                "lever": "the baseline to beat",
                "kept": "-",
                "features": 2,
                "cv_brier": naive_summary["cv_brier_mean"],
                "cv_log_loss": naive_summary["cv_log_loss_mean"],
                "cv_auc": naive_summary["cv_auc_mean"],
                "holdout_brier": naive_holdout.metrics["brier"],
            }
        )
        print(
            f"  {'naive rule (reference)':<26} CV brier {naive_summary['cv_brier_mean']:.4f}",
            flush=True,
        )
        recipe = Recipe(
            features=spec.group_features(BASE_GROUP),
            params=dict(SEED_RECIPE_PARAMS),
            scale_pos_weight=None,
        )
        current = run_step(
            "seed recipe", "issue 3, leak-free", True, recipe, config, data, folds, holdout
        )
        table.append(step_row(current, None, naive, weekend))
        for name, lever, change, kept in ablation_steps(feature_groups, candidate_groups, data):
            step = run_step(name, lever, kept, change(current.recipe), config, data, folds, holdout)
            table.append(step_row(step, current, naive, weekend))
            if kept:
                current = step
        if config.trials > 0:
            study_name = config.study_name or f"ablation-{session}"
            tuned_data = data.with_features(current.recipe.features)
            best = tune(
                config,
                tuned_data,
                folds,
                study_name,
                tags,
                current.recipe.postprocessor(),
                nested=True,
            )
            step = run_step(
                "widened tuning",
                f"best of {config.trials} trials",
                True,
                replace(current.recipe, params=best),
                config,
                data,
                folds,
                holdout,
            )
            table.append(step_row(step, current, naive, weekend))
            current = step
        step = run_step(
            "race-coherent challenger",
            "lambdarank + Plackett-Luce",
            False,
            replace(current.recipe, ranker=True),
            config,
            data,
            folds,
            holdout,
        )
        table.append(step_row(step, current, naive, weekend))
        frame = pd.DataFrame(table)
        log_frame(frame, "ablation.csv")
        mlflow.log_text(markdown_table(frame), "ablation.md")
        with artifact_folder() as folder:
            mlflow.log_artifact(str(ablation_plot(frame, folder / "ablation.png")), "plots")
    print()
    print(frame.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    return 0


def main(argv: list[str], config_from: Callable[[list[str]], TrainConfig]) -> int:
    try:
        config = config_from(argv)
        spec = load_feature_spec(config.dbt_manifest)
        data = read_features(config.warehouse, spec)
        folds, holdout = protocol_folds(config, data.seasons_with_results)
    except (DatasetError, FoldError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        lock_local_store(config.tracking_uri)
    except StoreBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    configure(config)
    print(
        f"ablation on {len(folds)} folds, holdout {holdout.describe()}; "
        f"MLflow {redact_url(config.tracking_uri)}, experiment {config.experiment!r}",
        flush=True,
    )
    try:
        return run_ablation(config, data, folds, holdout)
    except (FoldDataError, StudyMismatchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: open MLflow runs marked KILLED", file=sys.stderr)
        return 130
