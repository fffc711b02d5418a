"""`python train.py ablation`: the forecast-quality levers added one at a time, on the same folds.

Each step is one nested MLflow run under an `ablation` parent, and changes exactly one thing
from the step before: the leak-free seed recipe (the base features, class weighting, issue 3's
parameters, raw probabilities), then no class weight, calibration, per-race normalisation, the
project's default parameters, each feature group of the dbt YAML in turn, a study (with
`--trials`), the team features without the team lineage, the race-coherent challenger, the race
model alone and the blend with it. Candidate groups (`feature: false`, in
`podium_feature_candidates`) are measured on top of the step before and not kept. The parent
holds the table of every step. Every step runs the one CV protocol (`CrossValidation.run`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import mlflow
import optuna
import pandas as pd

from models_py import tracking, tuning
from models_py.evaluation import CrossValidation, FoldResult, folds_better, summarize
from models_py.experiments.ranking import PlackettLucePostProcessor, make_ranker
from models_py.features import FeatureTable, load_feature_spec, read_features
from models_py.folds import Fold, protocol_folds
from models_py.models import (
    DEFAULT_LGBM_PARAMS,
    NAIVE_BASELINE,
    Recipe,
    baseline_recipes,
    blend_recipe,
    make_model,
    race_model_recipe,
)
from models_py.settings import Locations, Protocol

BASE_GROUP = "base"
UNGATED = "_ungated"
# Candidates that compute team features without the team lineage (`meta.variant_of`): swapped
# in for the features they replace, never added beside them.
LINEAGE_OFF_GROUP = "team_lineage_off"
WEEKEND_COLUMN = "practice_sessions_before_qualifying"
# Issue 3's defaults, the seed recipe's parameters, with class weighting (negatives/positives).
SEED_RECIPE_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "is_unbalance": True,
}


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
    recipe: Recipe, cv: CrossValidation, folds: list[Fold], holdout: Fold
) -> tuple[list[FoldResult], FoldResult]:
    if recipe.kind == "lambdarank":
        results = cv.run(
            recipe,
            [*folds, holdout],
            factory=make_ranker,
            postprocessor=PlackettLucePostProcessor(),
        )
    else:
        results = cv.run(recipe, [*folds, holdout], factory=make_model)
    return results[:-1], results[-1]


def weekend_types(table: FeatureTable) -> pd.Series | None:
    """Race id → "one session" / "several sessions" before qualifying (practice data only)."""
    if WEEKEND_COLUMN not in table.frame:
        return None
    sessions = table.frame.groupby("race_id")[WEEKEND_COLUMN].max().dropna()
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
        "cv_win_brier": summary.get("cv_win_brier_mean"),
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


Change = Callable[[Recipe], Recipe]


def ablation_steps(
    table: FeatureTable, feature_groups: list[str], candidate_groups: list[str]
) -> list[tuple[str, str, Change, bool]]:
    """(name, lever, change to the previous recipe, kept) for every step after the seed."""
    unweighted = {key: value for key, value in SEED_RECIPE_PARAMS.items() if key != "is_unbalance"}
    steps: list[tuple[str, str, Change, bool]] = [
        ("no class weight", "no is_unbalance", lambda r: replace(r, params=unweighted), True),
        ("calibration", "Platt on earlier seasons", lambda r: replace(r, calibrate=True), True),
        ("normalisation", "each race sums to 3", lambda r: replace(r, normalise=True), True),
        (
            "regularised defaults",
            "project default parameters",
            lambda r: replace(r, params=dict(DEFAULT_LGBM_PARAMS)),
            True,
        ),
    ]
    spec = table.spec

    def adding(group: str) -> Change:
        return lambda r: replace(r, features=(*r.features, *spec.group_features(group)))

    variants = {
        group.removesuffix(UNGATED): group for group in candidate_groups if group.endswith(UNGATED)
    }
    for group in feature_groups:
        if group in variants:
            # An ungated variant is measured in place of its gated group, on the same base.
            name = variants[group]
            steps.append((f"+ {name}", "candidate: without the gate", adding(name), False))
        steps.append((f"+ {group}", "feature group", adding(group), True))
    for group in candidate_groups:
        if group not in variants.values() and group != LINEAGE_OFF_GROUP:
            steps.append((f"+ {group}", "candidate feature group", adding(group), False))
    return steps


def run_step(
    name: str,
    lever: str,
    kept: bool,
    recipe: Recipe,
    cv: CrossValidation,
    folds: list[Fold],
    holdout: Fold,
) -> StepResult:
    started = time.perf_counter()
    with tracking.tracked_run(run_name=f"ablation: {name}", nested=True):
        results, holdout_result = evaluate_recipe(recipe, cv, folds, holdout)
        summary = summarize(results) | {
            f"holdout_{key}": value for key, value in holdout_result.metrics.items()
        }
        tracking.log_params(
            {
                "step": name,
                "lever": lever,
                "kept": kept,
                "recipe": recipe.to_dict(),
                "postprocessing": holdout_result.postprocessor.describe(),
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
    """The table as Markdown, for docs/ablation.md (no extra dependency)."""
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


def tuned_params(
    cv: CrossValidation, features: tuple[str, ...], folds: list[Fold], trials: int, seed: int
) -> dict[str, Any]:
    """A study in memory over the current recipe's features (the same objective as `tune`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=tuning.pruner(),
    )
    study.optimize(
        tuning.Objective(cv, folds, features=features),
        n_trials=trials,
        callbacks=[tuning.Progress(trials)],
    )
    return tuning.best_params(study)


def ablation(
    locations: Locations, protocol: Protocol, trials: int, table: FeatureTable
) -> pd.DataFrame:
    spec = table.spec
    folds, holdout = protocol_folds(protocol, table.seasons_with_results)
    columns = tuple(spec.columns)
    cv = CrossValidation(
        table,
        columns,
        protocol.window,
        protocol.calibration_seasons,
        protocol.seed,
        protocol.workers,
    )
    default_groups = list(dict.fromkeys(spec.columns[name].group for name in spec.features()))
    candidate_groups = [
        group
        for group in dict.fromkeys(column.group for column in spec.columns.values())
        if group not in default_groups
        and all(not spec.columns[name].is_default for name in spec.group_features(group))
    ]
    feature_groups = [group for group in default_groups if group != BASE_GROUP]
    weekend = weekend_types(table)
    naive_recipe = next(r for r in baseline_recipes(columns) if r.name == NAIVE_BASELINE)
    naive, naive_holdout = evaluate_recipe(naive_recipe, cv, folds, holdout)
    naive_summary = summarize(naive)
    table_rows: list[dict] = [
        {
            "step": "naive rule (reference)",
            "lever": "the baseline to beat",
            "kept": "-",
            "features": len(naive_recipe.features),
            "cv_brier": naive_summary["cv_brier_mean"],
            "cv_log_loss": naive_summary["cv_log_loss_mean"],
            "cv_auc": naive_summary["cv_auc_mean"],
            "holdout_brier": naive_holdout.metrics["brier"],
        }
    ]
    print(f"  {'naive rule (reference)':<26} CV brier {naive_summary['cv_brier_mean']:.4f}")
    seed_recipe = Recipe(
        name="seed recipe",
        kind="lightgbm",
        features=spec.group_features(BASE_GROUP),
        params=SEED_RECIPE_PARAMS,
        calibrate=False,
        normalise=False,
    )
    current = run_step("seed recipe", "issue 3, leak-free", True, seed_recipe, cv, folds, holdout)
    table_rows.append(step_row(current, None, naive, weekend))
    for name, lever, change, kept in ablation_steps(table, feature_groups, candidate_groups):
        step = run_step(name, lever, kept, change(current.recipe), cv, folds, holdout)
        table_rows.append(step_row(step, current, naive, weekend))
        if kept:
            current = step
    if trials > 0:
        best = tuned_params(cv, current.recipe.features, folds, trials, protocol.seed)
        step = run_step(
            "tuned",
            f"best of {trials} trials",
            True,
            replace(current.recipe, params=best),
            cv,
            folds,
            holdout,
        )
        table_rows.append(step_row(step, current, naive, weekend))
        current = step
    twins = spec.variants(LINEAGE_OFF_GROUP)
    if twins:
        swapped = tuple(twins.get(name, name) for name in current.recipe.features)
        step = run_step(
            "no team lineage",
            f"{sum(name in twins for name in current.recipe.features)} team features without it",
            False,
            replace(current.recipe, features=swapped),
            cv,
            folds,
            holdout,
        )
        table_rows.append(step_row(step, current, naive, weekend))
    challenger = replace(current.recipe, kind="lambdarank", calibrate=False, normalise=False)
    step = run_step(
        "race-coherent challenger",
        "lambdarank + Plackett-Luce",
        False,
        challenger,
        cv,
        folds,
        holdout,
    )
    table_rows.append(step_row(step, current, naive, weekend))
    features, params = current.recipe.features, current.recipe.params
    step = run_step(
        "race model alone",
        "conditional logit + Plackett-Luce",
        False,
        race_model_recipe(features),
        cv,
        folds,
        holdout,
    )
    table_rows.append(step_row(step, current, naive, weekend))
    step = run_step(
        "blend",
        "LightGBM + race model, weights fitted on earlier seasons",
        True,
        blend_recipe(features, params),
        cv,
        folds,
        holdout,
    )
    table_rows.append(step_row(step, current, naive, weekend))
    return pd.DataFrame(table_rows)


def ablation_plot(table: pd.DataFrame, path: Any) -> Any:
    """Mean CV Brier after each step, with the naive rule as a reference line."""
    plt = tracking.pyplot()
    reference = table[table["kept"] == "-"]
    steps = table[table["kept"] != "-"]
    figure, axes = plt.subplots(figsize=(9, 0.42 * len(steps) + 1.6))
    colours = ["tab:blue" if kept == "yes" else "tab:grey" for kept in steps["kept"]]
    axes.barh(steps["step"], steps["cv_brier"], color=colours)
    for position, value in enumerate(steps["cv_brier"]):
        axes.text(value, position, f" {value:.4f}", va="center", fontsize=8)
    if not reference.empty:
        naive = float(reference["cv_brier"].iloc[0])
        axes.axvline(naive, color="tab:red", linestyle="--", label=f"naive rule {naive:.4f}")
        axes.legend(loc="lower right")
    low, high = float(table["cv_brier"].min()), float(table["cv_brier"].max())
    axes.set_xlim(low - 0.15 * (high - low) - 1e-4, high + 0.25 * (high - low) + 1e-4)
    axes.invert_yaxis()
    axes.set(
        xlabel="mean CV Brier (lower is better); grey = measured, not kept",
        title="ablation, one lever at a time",
    )
    return tracking.save_figure(figure, path)


def run_ablation(locations: Locations, protocol: Protocol, experiment: str, trials: int) -> None:
    spec = load_feature_spec(locations.dbt_manifest)
    table = read_features(locations.warehouse, spec, tuple(spec.columns))
    tracking.lock_local_store(locations.tracking_uri, "train.py ablation")
    tracking.configure(locations, experiment)
    print(
        f"ablation {protocol.describe()}; MLflow "
        f"{tracking.redact_url(locations.tracking_uri)}, experiment {experiment!r}",
        flush=True,
    )
    tags = tracking.common_tags(locations.warehouse, spec.sql_sha256, uuid.uuid4().hex[:12])
    with tracking.tracked_run(run_name="ablation", tags={**tags, "pitwall.role": "ablation"}):
        tracking.log_params(
            {
                "window": protocol.window,
                "cv_seasons": f"{protocol.first_cv_season}-{protocol.last_cv_season}",
                "test_season": protocol.test_season,
                "calibration_seasons": protocol.calibration_seasons,
                "trials": trials,
            }
        )
        frame = ablation(locations, protocol, trials, table)
        tracking.log_frame(frame, "ablation.csv")
        mlflow.log_text(markdown_table(frame), "ablation.md")
        with tracking.artifact_folder() as folder:
            mlflow.log_artifact(str(ablation_plot(frame, folder / "ablation.png")), "plots")
    print()
    print(frame.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
