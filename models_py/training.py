"""`train` and `tune`: evaluate recipes with the one CV protocol, register what is served.

`train`, for each prediction moment (pre-qualifying, post-qualifying): rolling CV and the
holdout season for the podium model and the cheap baselines; the champion decision (the new
holdout Brier against the champion's holdout model, re-scored now on the same rows); the
serving refit of the new recipe on the latest seasons up to the last race with results; and a
new version of the moment's registered model, whose pyfunc carries the ONNX graph and the
post-processing. `tune` adds trials to the protocol's study. Failures are exceptions that
`cli.py` turns into exit codes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import mlflow
import pandas as pd
from optuna.trial import TrialState

from models_py import serving, tracking, tuning
from models_py.evaluation import (
    CrossValidation,
    FoldResult,
    ModelFactory,
    ServingRefit,
    folds_better,
    summarize,
)
from models_py.features import (
    MOMENTS,
    POST_QUALIFYING,
    PRE_QUALIFYING,
    FeatureTable,
    connect_read_only,
    load_feature_spec,
    read_features,
)
from models_py.folds import Fold, protocol_folds
from models_py.models import (
    BASELINE_DESCRIPTIONS,
    BLEND,
    NAIVE_BASELINE,
    PODIUM_MODEL,
    RULE_BASELINE,
    Recipe,
    baseline_recipes,
    blend_recipe,
    make_model,
    model_matrix,
    podium_recipe,
)
from models_py.probability import PostProcessor
from models_py.settings import Locations, Protocol


class BadInput(RuntimeError):
    """A command cannot run on what it was given; `cli.py` prints it and exits 2."""


def registered_name(model_name: str, moment: str) -> str:
    """One registered model per moment: `podium` and `podium-post-qualifying`."""
    return model_name if moment == PRE_QUALIFYING else f"{model_name}-{moment.replace('_', '-')}"


@dataclass(frozen=True)
class Candidate:
    """A recipe as a training run compares it; research candidates bring their own model
    factory and post-processing."""

    recipe: Recipe
    description: str
    factory: ModelFactory = make_model
    postprocessor: PostProcessor | None = None


@dataclass(frozen=True)
class CandidateRun:
    candidate: Candidate
    run_id: str
    results: list[FoldResult]
    holdout: FoldResult
    summary: dict[str, float]

    @property
    def name(self) -> str:
        return self.candidate.recipe.name


@dataclass(frozen=True)
class TrainOptions:
    locations: Locations
    protocol: Protocol = field(default_factory=Protocol)
    experiment: str = "pitwall-podium"
    model_name: str = "podium"
    moments: tuple[str, ...] = MOMENTS
    params: dict[str, Any] | None = None
    params_origin: str = "project defaults"
    study_name: str | None = None
    baselines: bool = True
    challenger: bool = False
    calibrate: bool = True
    normalise: bool = True


@dataclass
class Context:
    """What `train` and `tune` start from: the features of both moments, folds, MLflow."""

    table: FeatureTable
    folds: list[Fold]
    holdout: Fold
    tags: dict[str, str]
    cv: CrossValidation


def prepare(locations: Locations, protocol: Protocol, experiment: str, holder: str) -> Context:
    spec = load_feature_spec(locations.dbt_manifest)
    table = read_features(locations.warehouse, spec, spec.features(POST_QUALIFYING))
    folds, holdout = protocol_folds(protocol, table.seasons_with_results)
    print(
        f"{len(spec.features(PRE_QUALIFYING))} pre-qualifying features "
        f"(+{len(spec.features(POST_QUALIFYING)) - len(spec.features(PRE_QUALIFYING))} after "
        f"qualifying), {len(table.past)} past rows; {len(folds)} folds "
        f"({folds[0].describe()} … {folds[-1].describe()}); holdout {holdout.describe()}",
        flush=True,
    )
    tracking.lock_local_store(locations.tracking_uri, holder)
    experiment_id = tracking.configure(locations, experiment)
    where = tracking.redact_url(locations.tracking_uri)
    print(f"MLflow: {where}, experiment {experiment!r}", flush=True)
    if locations.tracking_uri.startswith(("http://", "https://")):
        print(f"  runs at {where}/#/experiments/{experiment_id}")
    tags = tracking.common_tags(locations.warehouse, spec.sql_sha256, uuid.uuid4().hex[:12])
    cv = CrossValidation(
        table,
        spec.features(POST_QUALIFYING),
        protocol.window,
        protocol.calibration_seasons,
        protocol.seed,
        protocol.workers,
    )
    return Context(table, folds, holdout, tags, cv)


def comparisons(
    results: list[FoldResult],
    summary: dict[str, float],
    done: dict[str, CandidateRun],
    against_lightgbm: bool = False,
) -> dict[str, float]:
    """Lift over the rule baseline, and the folds won against the naive rule (and against
    LightGBM alone, for the blend)."""
    compared: dict[str, float] = {}
    reference = done[RULE_BASELINE].summary if RULE_BASELINE in done else summary
    compared["cv_brier_lift_vs_rule"] = reference["cv_brier_mean"] - summary["cv_brier_mean"]
    compared["cv_auc_lift_vs_rule"] = summary["cv_auc_mean"] - reference["cv_auc_mean"]
    for name, baseline in done.items():
        if (
            name == NAIVE_BASELINE
            or name.startswith("baseline_grid")
            or (name == PODIUM_MODEL and against_lightgbm)
        ):
            short = name.removeprefix("baseline_")
            compared[f"cv_folds_beating_{short}"] = folds_better(results, baseline.results)
            compared[f"cv_brier_lift_vs_{short}"] = (
                baseline.summary["cv_brier_mean"] - summary["cv_brier_mean"]
            )
    return compared


def evaluate_candidate(
    candidate: Candidate, context: Context, protocol: Protocol, done: dict[str, CandidateRun]
) -> CandidateRun:
    recipe = candidate.recipe
    detailed = recipe.name in SERVABLE
    folds = context.folds
    print(f"{recipe.name} ({recipe.moment}): {candidate.description}", flush=True)
    started = time.perf_counter()

    def progress(result: FoldResult) -> None:
        if detailed and result.fold in folds:
            print(
                f"  {recipe.name} fold {folds.index(result.fold) + 1:>2}/{len(folds)} "
                f"{result.fold.describe()}: brier {result.metrics['brier']:.4f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )

    tags = {**context.tags, "pitwall.role": recipe.name, "pitwall.moment": recipe.moment}
    with tracking.tracked_run(
        run_name=f"{recipe.name} {recipe.moment} {protocol.describe()}", tags=tags
    ) as run:
        results = context.cv.run(
            recipe,
            [*folds, context.holdout],
            on_result=progress,
            factory=candidate.factory,
            postprocessor=candidate.postprocessor,
        )
        cv_results, holdout = results[:-1], results[-1]
        summary = summarize(cv_results)
        summary |= comparisons(cv_results, summary, done, against_lightgbm=recipe.name == BLEND)
        summary |= {f"holdout_{name}": value for name, value in holdout.metrics.items()}
        tracking.log_params(
            {
                **{f"model.{key}": value for key, value in holdout.model.params().items()},
                "model": recipe.name,
                "moment": recipe.moment,
                "recipe": recipe.to_dict(),
                "postprocessing": holdout.postprocessor.describe(),
                "features": ",".join(recipe.features),
                "cv_valid_seasons": ",".join(str(fold.valid_year) for fold in folds),
                "window": protocol.window,
                "calibration_seasons": protocol.calibration_seasons,
                "test_season": protocol.test_season,
                "seed": protocol.seed,
            }
        )
        mlflow.log_metrics(summary)
        tracking.log_fold_metrics(cv_results)
        tracking.log_cv_artifacts(cv_results, holdout)
    beaten = [
        f"beats the {key.removeprefix('cv_folds_beating_').replace('_', '-')} baseline in "
        f"{value:.0f} of {len(folds)} folds"
        for key, value in summary.items()
        if key.startswith("cv_folds_beating_")
    ]
    print(
        f"  {recipe.name}: CV brier {summary['cv_brier_mean']:.4f} log loss "
        f"{summary['cv_log_loss_mean']:.4f} auc {summary['cv_auc_mean']:.3f}; holdout "
        f"{holdout.fold.valid_year} brier {summary['holdout_brier']:.4f}"
        + "".join(f"; {text}" for text in beaten)
        + f" ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return CandidateRun(candidate, run.info.run_id, cv_results, holdout, summary)


def parity_rows(table: FeatureTable, season: int) -> pd.DataFrame:
    """The rows a served model is checked on before registration: its season's (races run and
    the upcoming one), or the last season's before a new season has any."""
    frame = table.frame
    rows = frame[frame["year"] == season]
    if rows.empty:
        rows = frame[frame["year"] == season - 1]
    return rows.reset_index(drop=True)


def serving_target(table: FeatureTable) -> tuple[int, int | None]:
    """The season the served model serves and the round it is trained up to: the upcoming
    race's season, through its races with results (a new season: the seasons before it)."""
    upcoming = table.upcoming
    if not upcoming.empty:
        return int(upcoming["year"].iloc[0]), int(upcoming["round"].iloc[0])
    return max(table.seasons_with_results) + 1, None


def log_served(
    name: str,
    recipe: Recipe,
    model: Any,
    postprocessor: PostProcessor,
    cv: CrossValidation,
    rows: pd.DataFrame,
) -> tuple[str, float]:
    """Log a served pyfunc in the active run, checked to serve what the booster and its
    post-processing give on `rows` (whole races)."""
    booster = getattr(model, "booster", None)
    if booster is None:
        raise BadInput(f"{recipe.name} has no booster to serve")
    categories = {key: cv.categories[key] for key in recipe.features if key in cv.categories}
    matrix = model_matrix(rows, recipe.features, cv.categories)
    expected = serving.served_frame(postprocessor, rows["race_id"].to_numpy(), model.score(matrix))
    return serving.log_served_model(
        name,
        booster,
        recipe,
        categories,
        postprocessor,
        rows,
        expected,
        race_model=getattr(model, "race_model", None),
    )


def log_drift(warehouse: Any) -> None:
    """The warehouse's `feature_drift` (dbt), as an artifact of the served run."""
    with connect_read_only(warehouse) as connection:
        try:
            drift = connection.execute("select * from feature_drift").df()
        except duckdb.Error:
            return  # an older warehouse without the model
    tracking.log_frame(drift, "feature_drift.csv")
    drifted = drift[drift["is_drifted"]] if "is_drifted" in drift else drift.iloc[0:0]
    mlflow.log_metric("features_drifted", float(len(drifted)))


def summary_table(runs: dict[str, CandidateRun]) -> str:
    columns = {
        "cv_auc_mean": "cv auc",
        "cv_brier_mean": "cv brier",
        "cv_log_loss_mean": "cv log loss",
        "cv_top3_hit_rate_mean": "cv top-3 hit",
        "cv_race_mass_error_mean": "cv mass err",
        "cv_win_brier_mean": "cv win brier",
        "cv_points_brier_mean": "cv points brier",
        "holdout_auc": "holdout auc",
        "holdout_brier": "holdout brier",
        "holdout_win_brier": "holdout win brier",
    }
    table = pd.DataFrame({name: run.summary for name, run in runs.items()}).T[list(columns)]
    return table.rename(columns=columns).to_string(float_format=lambda value: f"{value:.4f}")


# The candidates one of which is served: LightGBM alone, and LightGBM blended with the race model.
LIGHTGBM_SERVED = f"{PODIUM_MODEL}_served"  # LightGBM's P(podium) beside the race model
SERVABLE = (PODIUM_MODEL, BLEND, LIGHTGBM_SERVED)


def candidates(options: TrainOptions, features: tuple[str, ...], moment: str) -> list[Candidate]:
    chosen: list[Candidate] = []
    if options.baselines:
        chosen += [
            Candidate(recipe, BASELINE_DESCRIPTIONS[recipe.name])
            for recipe in baseline_recipes(features, moment)
        ]
    if options.challenger and moment == PRE_QUALIFYING:
        # Research, imported only on request: the default training never loads it.
        from models_py.experiments import ranking

        chosen.append(
            Candidate(
                ranking.ranker_recipe(features, options.params),
                "research: LightGBM lambdarank over finishing order, Plackett-Luce top-3 "
                "probabilities; measured, never served",
                factory=ranking.make_ranker,
                postprocessor=ranking.PlackettLucePostProcessor(),
            )
        )
    recipe = podium_recipe(
        features,
        options.params,
        moment=moment,
        calibrate=options.calibrate,
        normalise=options.normalise,
    )
    chosen.append(Candidate(recipe, f"LightGBM, {options.params_origin}"))
    if options.calibrate and options.normalise:
        chosen.append(
            Candidate(
                blend_recipe(features, options.params, moment=moment),
                "LightGBM blended with the race model (conditional logit, Plackett-Luce), "
                "weights fitted on earlier seasons",
            )
        )
    return chosen


def served_candidate(
    runs: dict[str, CandidateRun], context: Context, protocol: Protocol
) -> CandidateRun:
    """The blend if it beats LightGBM alone on mean CV Brier; else LightGBM's P(podium) with the
    race model serving only P(win) and P(points) (its podium metrics are LightGBM's own)."""
    lightgbm = runs[PODIUM_MODEL]
    blended = runs.get(BLEND)
    if blended is None:
        return lightgbm
    lift = lightgbm.summary["cv_brier_mean"] - blended.summary["cv_brier_mean"]
    if lift > 0:
        print(f"  serving the blend: CV Brier {lift:.5f} lower than LightGBM alone", flush=True)
        return blended
    print(
        f"  serving LightGBM's P(podium): the blend does not beat it on CV Brier "
        f"({-lift:.5f} higher); the race model serves P(win) and P(points)",
        flush=True,
    )
    recipe = replace(blended.candidate.recipe, name=LIGHTGBM_SERVED, blend=False)
    candidate = Candidate(recipe, "LightGBM's P(podium); P(win) and P(points) by the race model")
    runs[recipe.name] = evaluate_candidate(candidate, context, protocol, runs)
    return runs[recipe.name]


def read_season(locations: Locations, season: int) -> Callable[[list[str]], pd.DataFrame]:
    """Rows of a season with results, with the given features (to re-score a champion)."""

    def read(features: list[str]) -> pd.DataFrame:
        spec = load_feature_spec(locations.dbt_manifest)
        where = f"f.year = {int(season)} and not f.is_upcoming"
        return read_features(locations.warehouse, spec, features, where=where).frame

    return read


def train_moment(
    options: TrainOptions, context: Context, moment: str
) -> tuple[dict[str, CandidateRun], serving.Registration]:
    protocol = options.protocol
    features = context.table.spec.features(moment)
    if moment == POST_QUALIFYING and features == context.table.spec.features(PRE_QUALIFYING):
        raise BadInput(
            "podium_features declares no post-qualifying column (meta.moment): rebuild the "
            "warehouse with this checkout (make build), or train --moment pre-qualifying"
        )
    runs: dict[str, CandidateRun] = {}
    for candidate in candidates(options, features, moment):
        runs[candidate.recipe.name] = evaluate_candidate(candidate, context, protocol, runs)
    served = served_candidate(runs, context, protocol)
    recipe, holdout = served.candidate.recipe, served.holdout
    fold = holdout.fold
    name = registered_name(options.model_name, moment)

    def decide(champion: Any) -> serving.Decision:
        """Against the champion as it is when this version's turn comes."""
        champion_brier, why_not = (
            serving.rescore_champion(
                champion, fold.valid_year, read_season(options.locations, fold.valid_year)
            )
            if champion is not None
            else (None, "")
        )
        return serving.decide(served.summary["holdout_brier"], champion, champion_brier, why_not)

    season, before_round = serving_target(context.table)
    refit = ServingRefit(context.cv, recipe, season).fit(before_round)
    with tracking.tracked_run(run_id=served.run_id):
        past = context.table.past
        training = past[past["year"].isin(fold.train_years)]
        tracking.log_dataset(
            training[["race_id", "driver_id", "year", "round", "podium", *recipe.features]],
            source=context.table.source,
            target="podium",
            name=f"podium_features_{fold.train_years[0]}_{fold.train_years[-1]}",
        )
        mlflow.log_dict(recipe.to_dict(), "recipe.json")
        tracking.log_fold_runs(served.results, {"model": recipe.name, "window": protocol.window})
        holdout_uri, holdout_difference = log_served(
            "holdout_model",
            recipe,
            holdout.model,
            holdout.postprocessor,
            context.cv,
            holdout_frame(context.table, holdout),
        )
        served_rows = parity_rows(context.table, season)
        model_uri, difference = log_served(
            "model", recipe, refit.model, refit.postprocessor, context.cv, served_rows
        )
        mlflow.log_metrics(
            {
                "holdout_model_max_abs_diff": holdout_difference,
                "served_max_abs_diff": difference,
                "served_train_rows": refit.train_rows,
            }
        )
        tracking.log_comparison({run.name: run.results for run in runs.values()}, recipe.name)
        if moment == PRE_QUALIFYING:
            log_drift(options.locations.warehouse)
        mlflow.set_tags(
            {
                "holdout_model_uri": holdout_uri,
                "model_uri": model_uri,
                "served_trained_through": refit.trained_through,
                "pitwall.served": "true",
            }
        )
    print(
        f"  served {name}: refitted on {refit.trained_through} ({refit.train_rows} rows); "
        f"the pyfunc (ONNX inside) reproduces the booster to {difference:.1e}",
        flush=True,
    )
    registration = serving.register(
        name,
        model_uri,
        decide,
        {
            **context.tags,
            **version_tags(recipe, protocol, served, fold, holdout_uri, refit.trained_through),
            "params_origin": options.params_origin,
            "study_name": options.study_name or "none",
            "training_run_id": served.run_id,
        },
    )
    return runs, registration


def holdout_frame(table: FeatureTable, holdout: FoldResult) -> pd.DataFrame:
    """The holdout season's rows, in the order of its predictions."""
    keys = holdout.predictions[["race_id", "driver_id"]]
    return keys.merge(table.past, on=["race_id", "driver_id"], validate="one_to_one")


def version_tags(
    recipe: Recipe,
    protocol: Protocol,
    served: CandidateRun,
    fold: Fold,
    holdout_uri: str,
    trained_through: str,
) -> dict[str, str]:
    """What a registered version records: its recipe's evaluation and what it was fitted on."""
    return {
        "moment": recipe.moment,
        "features": ",".join(recipe.features),
        "window": str(protocol.window),
        "calibration_seasons": str(protocol.calibration_seasons),
        "seed": str(protocol.seed),
        "cv_brier": f"{served.summary['cv_brier_mean']:.6f}",
        "holdout_brier": f"{served.summary['holdout_brier']:.6f}",
        "holdout_season": str(fold.valid_year),
        "holdout_train_first": str(fold.train_years[0]),
        "holdout_train_last": str(fold.train_years[-1]),
        "holdout_model_uri": holdout_uri,
        "trained_through": trained_through,
    }


def train(options: TrainOptions) -> None:
    started = time.perf_counter()
    context = prepare(options.locations, options.protocol, options.experiment, "train.py train")
    outcomes = {moment: train_moment(options, context, moment) for moment in options.moments}
    for moment, (runs, registration) in outcomes.items():
        print(f"\n{moment.replace('_', '-')}:")
        print(summary_table(runs))
        print(registration.describe())
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s; open the runs with "
        f"`mlflow ui --backend-store-uri {tracking.redact_url(options.locations.tracking_uri)}`"
    )


def tune(
    locations: Locations,
    protocol: Protocol,
    experiment: str,
    trials: int,
    storage: str | None,
    name: str | None,
    worker: bool,
    heartbeat: int = tuning.HEARTBEAT_SECONDS,
) -> None:
    """Queue `trials` trials in the protocol's study (created on first use) and run queued
    trials, with other workers if any, until none is queued or running; under one MLflow run
    with a nested run per trial."""
    started = time.perf_counter()
    context = prepare(locations, protocol, experiment, "train.py tune")
    sql_sha256 = context.tags["features_sql_sha256"]
    name = name or tuning.study_name(protocol, sql_sha256)
    study = tuning.open_study(
        storage,
        name,
        tuning.study_protocol(protocol, sql_sha256, PRE_QUALIFYING),
        protocol.seed,
        worker=worker,
        heartbeat=heartbeat,
    )
    before = sum(trial.state.is_finished() for trial in study.trials)
    tuning.plan(study, trials, worker)
    waiting = tuning.queued(study)
    where = tracking.redact_url(tuning.dashboard_storage(storage))
    earlier = f" ({waiting - trials} left by earlier calls)" if waiting > trials else ""
    print(
        f"study {name!r} in {where}: {before} trials so far; {trials} added to its queue, "
        f"{waiting} queued{earlier}",
        flush=True,
    )
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not waiting and not running:
        print("nothing to run: queue trials with `python train.py tune --trials N`")
        return
    tags = {**context.tags, "pitwall.role": "study", "optuna.study_name": name}
    with tracking.tracked_run(run_name=f"optuna study {name}", tags=tags):
        tracking.log_params(
            {
                "study_name": name,
                "storage": where,
                "trials_added": trials,
                "trials_before": before,
                "objective": "mean fold Brier of the served probabilities",
                "pruner": f"WilcoxonPruner(p_threshold={tuning.PRUNER_P_THRESHOLD}, "
                f"n_startup_steps={tuning.PRUNER_STARTUP_STEPS})",
                "cv_valid_seasons": f"{protocol.first_cv_season}-{protocol.last_cv_season}",
                "window": protocol.window,
            }
        )
        callbacks = [tuning.Progress(max(waiting, 1)), tracking.log_trial_run]
        tuning.run_queue(
            study,
            tuning.Objective(context.cv, context.folds, features=context.table.spec.features()),
            callbacks,
            tuning.heartbeat_grace(storage, heartbeat),
        )
        # Workers of this machine killed meanwhile (their trials were queued again) left runs.
        tracking.report_orphaned_runs()
        best = tuning.best_params(study)
        states = [trial.state.name for trial in study.trials]
        seconds = time.perf_counter() - started
        mlflow.log_metrics(
            {
                "best_cv_brier": study.best_value,
                "best_trial_number": study.best_trial.number,
                "trials_complete": states.count("COMPLETE"),
                "trials_pruned": states.count("PRUNED"),
                "seconds": seconds,
            }
        )
        tracking.log_params({f"best.{key}": value for key, value in best.items()})
        with tracking.artifact_folder() as folder:
            for figure in tracking.study_plots(study, folder):
                mlflow.log_artifact(str(figure), artifact_path="study")
    print(
        f"best trial {study.best_trial.number}: CV brier {study.best_value:.4f} "
        f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned in the study; "
        f"this call {seconds:.0f} s)\n"
        f"train with it: python train.py train --params-from-study {name}\n"
        f"browse it:     optuna-dashboard {where}"
    )


def params_from_study(
    locations: Locations, protocol: Protocol, storage: str | None, name: str | None
) -> tuple[dict[str, Any], str]:
    """The best trial's parameters of a study tuned for this protocol and these features."""
    spec = load_feature_spec(locations.dbt_manifest)
    name = name or tuning.study_name(protocol, spec.sql_sha256)
    study = tuning.open_study(
        storage,
        name,
        tuning.study_protocol(protocol, spec.sql_sha256, PRE_QUALIFYING),
        protocol.seed,
        create=False,
    )
    return tuning.best_params(study), name
