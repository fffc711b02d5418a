"""`python train.py`: rolling-season CV of the podium model and its baselines, tracked in MLflow."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from models_py import onnx_export, predict
from models_py.config import (
    DEFAULT_ARTIFACT_ROOT,
    TrainConfig,
    add_location_options,
    default_dbt_manifest,
    default_raw_dir,
    default_tracking_uri,
    default_warehouse,
)
from models_py.dataset import DatasetError, FeatureData, load_feature_spec, read_features
from models_py.evaluation import FoldDataError, FoldResult, fit_and_score, summarize
from models_py.folds import Fold, FoldError, protocol_folds
from models_py.metrics import METRIC_NAMES
from models_py.modelling import (
    DEFAULT_LGBM_PARAMS,
    LightGBMModel,
    LogisticModel,
    PodiumModel,
    RuleModel,
)
from models_py.registry import Registration, register
from models_py.tracking import (
    StoreBusyError,
    artifact_folder,
    common_tags,
    configure,
    lock_local_store,
    log_cv_artifacts,
    log_dataset,
    log_fold_run,
    log_lightgbm_model,
    log_params,
    redact_url,
    tracked_run,
)
from models_py.tuning import (
    Objective,
    StudyMismatchError,
    check_study_protocol,
    create_study,
    finished_trials,
    prepare_folds,
    run_study,
    save_study_plots,
    split_scale_pos_weight,
)

PYFUNC_TOLERANCE = 1e-9
INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@dataclass(frozen=True)
class Candidate:
    name: str
    make: Callable[[], PodiumModel]
    description: str


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description=(
            "Train and evaluate the podium model on podium_features with rolling-season "
            "cross-validation (train on W seasons, validate on the next), score the holdout "
            "season, and track everything in MLflow together with three baselines."
        ),
    )
    parser.add_argument(
        "--window", type=int, default=10, help="training seasons per fold (default 10)"
    )
    parser.add_argument(
        "--first-cv-season", type=int, default=2001, help="first validation season (default 2001)"
    )
    parser.add_argument(
        "--last-cv-season", type=int, default=2024, help="last validation season (default 2024)"
    )
    parser.add_argument(
        "--test-season",
        type=int,
        default=2025,
        help="holdout season, never seen by CV (default 2025)",
    )
    parser.add_argument(
        "--experiment",
        default="pitwall-podium",
        help="MLflow experiment name (default pitwall-podium)",
    )
    parser.add_argument(
        "--artifact-root",
        type=Path,
        default=DEFAULT_ARTIFACT_ROOT,
        help="artifact folder for new experiments on a local store (default ./mlartifacts)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="random seed for every model (default 42)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="LightGBM threads, fixed for determinism (default 2)"
    )
    parser.add_argument(
        "--scale-pos-weight",
        type=float,
        default=None,
        help="LightGBM scale_pos_weight (default: negatives / positives of each training fold)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip the three baseline runs")
    parser.add_argument(
        "--trials",
        type=int,
        default=50,
        help="Optuna trials the study should hold in total (default 50; 0 skips tuning)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="shared Optuna storage: a journal file (journal:PATH or *.log) or an RDB URL "
        "(sqlite:///study.db, postgresql://…); default: in memory",
    )
    parser.add_argument(
        "--study-name", default=None, help="Optuna study name (default: a new name per run)"
    )
    parser.add_argument(
        "--tune-only",
        action="store_true",
        help="worker mode: add trials to the shared study, then exit (no final model)",
    )
    parser.add_argument(
        "--model-name",
        default="podium-lgbm",
        help="registered model name (default podium-lgbm; the ONNX twin is <name>-onnx)",
    )
    add_location_options(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        warehouse=(args.warehouse or default_warehouse()).resolve(),
        dbt_manifest=(args.dbt_manifest or default_dbt_manifest()).resolve(),
        raw_dir=default_raw_dir().resolve(),
        window=args.window,
        first_cv_season=args.first_cv_season,
        last_cv_season=args.last_cv_season,
        test_season=args.test_season,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri or default_tracking_uri(),
        artifact_root=args.artifact_root,
        seed=args.seed,
        threads=args.threads,
        scale_pos_weight=args.scale_pos_weight,
        baselines=not args.no_baselines,
        trials=args.trials,
        storage=args.storage,
        study_name=args.study_name,
        tune_only=args.tune_only,
        model_name=args.model_name,
    )


def baselines(config: TrainConfig, data: FeatureData) -> list[Candidate]:
    categorical = list(data.spec.categorical)
    return [
        Candidate("baseline_rule", RuleModel, "driver_podium_rate_10 as the probability"),
        Candidate(
            "baseline_logistic",
            lambda: LogisticModel(
                numeric=list(data.spec.numeric), categorical=categorical, seed=config.seed
            ),
            "logistic regression, imputed and scaled",
        ),
        Candidate(
            "baseline_lgbm_default",
            lambda: LightGBMModel(
                categorical=categorical,
                seed=config.seed,
                threads=config.threads,
                hyperparameters={},
                scale_pos_weight=1.0,
                name="baseline_lgbm_default",
            ),
            "LightGBM, library default parameters",
        ),
    ]


def podium_candidate(
    config: TrainConfig, data: FeatureData, hyperparameters: dict, origin: str
) -> Candidate:
    params, tuned_weight = split_scale_pos_weight(hyperparameters)
    weight = tuned_weight if tuned_weight is not None else config.scale_pos_weight
    if "subsample" in params:
        params.setdefault("subsample_freq", 1)

    def make() -> LightGBMModel:
        return LightGBMModel(
            categorical=list(data.spec.categorical),
            seed=config.seed,
            threads=config.threads,
            hyperparameters=dict(params),
            scale_pos_weight=weight,
        )

    return Candidate("lgbm", make, f"LightGBM, {origin}")


def cross_validate(candidate: Candidate, data: FeatureData, folds: list[Fold]) -> list[FoldResult]:
    results: list[FoldResult] = []
    started = time.perf_counter()
    for index, fold in enumerate(folds, start=1):
        result = fit_and_score(candidate.make, data, fold)
        results.append(result)
        print(
            f"  {candidate.name:<22} fold {index:>2}/{len(folds)} {fold.describe()}: "
            f"brier {result.metrics['brier']:.4f} auc {result.metrics['auc']:.3f} "
            f"({result.seconds:.1f} s, {time.perf_counter() - started:.0f} s elapsed)",
            flush=True,
        )
    return results


def run_params(
    config: TrainConfig, data: FeatureData, folds: list[Fold], model: PodiumModel
) -> dict:
    return {
        **{f"model.{key}": value for key, value in model.params().items()},
        "model": model.name,
        "features": ",".join(data.features),
        "categorical_features": ",".join(data.spec.categorical),
        "window": config.window,
        "cv_valid_seasons": ",".join(str(fold.valid_year) for fold in folds),
        "test_season": config.test_season,
        "seed": config.seed,
    }


def lift(summary: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    return {
        "cv_brier_lift_vs_rule": reference["cv_brier_mean"] - summary["cv_brier_mean"],
        "cv_auc_lift_vs_rule": summary["cv_auc_mean"] - reference["cv_auc_mean"],
    }


def check_pyfunc(model_uri: str, model: LightGBMModel, features: pd.DataFrame) -> float:
    reloaded = mlflow.pyfunc.load_model(model_uri)
    difference = float(
        np.max(np.abs(np.asarray(reloaded.predict(features)) - model.predict_proba(features)))
    )
    if difference > PYFUNC_TOLERANCE:
        raise RuntimeError(
            f"the logged model does not reproduce the booster (max |diff| {difference:.2e})"
        )
    return difference


@dataclass(frozen=True)
class FinalModel:
    model_uri: str
    onnx_uri: str
    holdout_brier: float


def log_final_model(model: LightGBMModel, data: FeatureData, holdout_fold: Fold) -> FinalModel:
    """Dataset, encoding, booster, pyfunc check, ONNX with parity: all in the active run."""
    assert model.booster is not None
    training = data.seasons(holdout_fold.train_years)
    training = training[~training["is_upcoming"]]
    log_dataset(
        data,
        training,
        name=f"podium_features_{holdout_fold.train_years[0]}_{holdout_fold.train_years[-1]}",
    )
    mlflow.log_dict(data.categories, "feature_encoding.json")
    holdout_features = data.frame.loc[data.frame["year"] == holdout_fold.valid_year, data.features]
    model_uri = log_lightgbm_model(model, holdout_features)
    mlflow.log_metric("pyfunc_max_abs_diff", check_pyfunc(model_uri, model, holdout_features))

    onnx_model = onnx_export.convert(model.booster, len(data.features))
    parity = onnx_export.check_parity(onnx_model, model.booster, holdout_features)
    mlflow.log_metric("onnx_max_abs_diff", parity)
    onnx_input = holdout_features.to_numpy(dtype=np.float32)
    onnx_info = mlflow.onnx.log_model(
        onnx_model,
        name="onnx_model",
        # A signature, not an input example: MLflow would validate the example through JSON,
        # which cannot carry the NaNs of missing features.
        signature=infer_signature(
            onnx_input, onnx_export.predict(onnx_export.session(onnx_model), onnx_input)
        ),
        onnx_execution_providers=["CPUExecutionProvider"],
    )
    mlflow.set_tags({"model_uri": model_uri, "onnx_model_uri": onnx_info.model_uri})
    print(f"  ONNX parity on {len(holdout_features)} holdout rows: max |diff| {parity:.1e}")
    holdout_brier = float(
        mlflow.get_run(mlflow.active_run().info.run_id).data.metrics["holdout_brier"]
    )
    return FinalModel(model_uri, onnx_info.model_uri, holdout_brier)


def train_candidate(
    candidate: Candidate,
    config: TrainConfig,
    data: FeatureData,
    folds: list[Fold],
    holdout_fold: Fold,
    tags: dict[str, str],
    rule_summary: dict[str, float] | None,
) -> tuple[dict[str, float], FinalModel | None]:
    print(f"{candidate.name}: {candidate.description}", flush=True)
    is_podium_model = candidate.name == "lgbm"
    run_name = (
        f"{candidate.name} w{config.window} cv{folds[0].valid_year}-{folds[-1].valid_year} "
        f"test{config.test_season}"
    )
    final: FinalModel | None = None
    with tracked_run(run_name=run_name, tags={**tags, "pitwall.role": candidate.name}):
        results = cross_validate(candidate, data, folds)
        holdout = fit_and_score(candidate.make, data, holdout_fold)
        params = run_params(config, data, folds, holdout.model)
        log_params(params)
        summary = summarize(results)
        reference = summary if candidate.name == "baseline_rule" else rule_summary
        if reference is not None:
            summary |= lift(summary, reference)
        summary |= {f"holdout_{name}": value for name, value in holdout.metrics.items()}
        mlflow.log_metrics(summary)
        if is_podium_model:
            fold_params = {"model": params["model"], "window": config.window}
            for result in results:
                log_fold_run(result, fold_params)
        else:
            for result in results:
                mlflow.log_metrics(
                    {f"fold_{name}": value for name, value in result.metrics.items()},
                    step=result.fold.valid_year,
                )
        final_booster = holdout.model if isinstance(holdout.model, LightGBMModel) else None
        log_cv_artifacts(results, holdout, final_booster)
        if is_podium_model and isinstance(holdout.model, LightGBMModel):
            final = log_final_model(holdout.model, data, holdout_fold)
        print(
            f"  {candidate.name:<22} CV brier {summary['cv_brier_mean']:.4f} "
            f"auc {summary['cv_auc_mean']:.3f}; holdout {config.test_season} "
            f"brier {summary['holdout_brier']:.4f} auc {summary['holdout_auc']:.3f}",
            flush=True,
        )
    return summary, final


def tune(
    config: TrainConfig, data: FeatureData, folds: list[Fold], study_name: str, tags: dict[str, str]
) -> dict:
    """Run (or join) the Optuna study under one MLflow parent run; return the best parameters."""
    print(f"tuning: study {study_name!r}, {config.trials} trials in total", flush=True)
    started = time.perf_counter()
    run_tags = {**tags, "pitwall.role": "study", "optuna.study_name": study_name}
    with tracked_run(run_name=f"optuna study {study_name}", tags=run_tags):
        log_params(
            {
                "study_name": study_name,
                "trials_requested": config.trials,
                "storage": redact_url(config.storage) if config.storage else "in-memory",
                "sampler": f"TPESampler(seed={config.seed})",
                "pruner": "MedianPruner(n_startup_trials=5, n_warmup_steps=3)",
                "objective": "mean fold Brier",
                "cv_valid_seasons": ",".join(str(fold.valid_year) for fold in folds),
                "window": config.window,
            }
        )
        study = create_study(config.storage, study_name, config.seed)
        check_study_protocol(
            study,
            {
                "cv_valid_seasons": ",".join(str(fold.valid_year) for fold in folds),
                "window": str(config.window),
                "features_sql_sha256": data.spec.sql_sha256,
            },
        )
        objective = Objective(
            prepare_folds(data, folds), config.seed, config.threads, config.trials
        )
        run_study(study, objective, config.trials)
        finished = finished_trials(study)
        complete = [trial for trial in finished if trial.state.name == "COMPLETE"]
        if not complete:
            raise RuntimeError(
                f"study {study_name!r} has no complete trial to take parameters from"
            )
        best = study.best_trial
        mlflow.log_metrics(
            {
                "best_mean_brier": best.value,
                "best_trial_number": best.number,
                "trials_complete": len(complete),
                "trials_pruned": len(finished) - len(complete),
                "seconds": time.perf_counter() - started,
            }
        )
        log_params({f"best.{key}": value for key, value in best.params.items()})
        with artifact_folder() as folder:
            for figure in save_study_plots(study, folder):
                mlflow.log_artifact(str(figure), artifact_path="study")
    print(
        f"  best trial {best.number}: mean brier {best.value:.4f} "
        f"({len(complete)} complete, {len(finished) - len(complete)} pruned, "
        f"{time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return dict(best.params)


def summary_table(summaries: dict[str, dict[str, float]]) -> str:
    columns = [f"cv_{name}_mean" for name in METRIC_NAMES] + ["holdout_auc", "holdout_brier"]
    table = pd.DataFrame(summaries).T[columns]
    table.columns = [
        "cv auc",
        "cv brier",
        "cv log loss",
        "cv top-3 hit",
        "cv mass err",
        "holdout auc",
        "holdout brier",
    ]
    return table.to_string(float_format=lambda value: f"{value:.4f}")


def describe_registration(registration: Registration) -> str:
    decision = registration.decision
    verdict = "promoted to champion" if decision.promoted else "left as challenger"
    return (
        f"registered {registration.model_name} v{registration.version} "
        f"(ONNX v{registration.onnx_version}): {verdict}: {decision.reason}"
    )


def train(config: TrainConfig) -> int:
    started = time.perf_counter()
    try:
        spec = load_feature_spec(config.dbt_manifest)
        data = read_features(config.warehouse, spec)
        folds, holdout_fold = protocol_folds(config, data.seasons_with_results)
    except (DatasetError, FoldError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(
        f"{len(data.features)} features, {len(data.past)} past rows; {len(folds)} folds "
        f"({folds[0].describe()} … {folds[-1].describe()}); holdout {holdout_fold.describe()}",
        flush=True,
    )
    try:
        lock_local_store(config.tracking_uri)
    except StoreBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    experiment_id = configure(config)
    print(
        f"MLflow: {redact_url(config.tracking_uri)}, experiment {config.experiment!r}", flush=True
    )
    if config.tracking_uri.startswith(("http://", "https://")):
        print(f"  runs at {redact_url(config.tracking_uri)}/#/experiments/{experiment_id}")
    session = uuid.uuid4().hex[:12]
    tags = common_tags(config, data, session=session)
    study_name = config.study_name or f"podium-{session}"
    summaries: dict[str, dict[str, float]] = {}
    registration: Registration | None = None
    try:
        hyperparameters, origin = dict(DEFAULT_LGBM_PARAMS), "project defaults"
        if config.trials > 0 or config.storage:
            hyperparameters = tune(config, data, folds, study_name, tags)
            origin = f"best of study {study_name}"
            tags = {**tags, "optuna.study_name": study_name}
        if config.tune_only:
            print(f"done in {time.perf_counter() - started:.0f} s (worker: no final model)")
            return 0
        rule_summary: dict[str, float] | None = None
        if config.baselines:
            for candidate in baselines(config, data):
                summaries[candidate.name], _ = train_candidate(
                    candidate, config, data, folds, holdout_fold, tags, rule_summary
                )
                if candidate.name == "baseline_rule":
                    rule_summary = summaries[candidate.name]
        candidate = podium_candidate(config, data, hyperparameters, origin)
        summaries["lgbm"], final = train_candidate(
            candidate, config, data, folds, holdout_fold, tags, rule_summary
        )
        assert final is not None
        registration_tags = {
            "git_commit": tags["git_commit"],
            "data_version": tags["data_version"],
            "features": ",".join(data.features),
            "study_name": study_name if config.trials > 0 or config.storage else "none",
        }
        # Registration is a handful of registry calls on two models: a signal arriving in the
        # middle waits until they are all done, so both twins always carry the same aliases.
        signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
        try:
            registration = register(
                config.model_name,
                final.model_uri,
                final.onnx_uri,
                final.holdout_brier,
                config.warehouse,
                spec,
                config.test_season,
                registration_tags,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    except (FoldDataError, onnx_export.OnnxParityError, StudyMismatchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if registration is not None:
            print(
                f"interrupted after registration: {describe_registration(registration)}",
                file=sys.stderr,
            )
        else:
            # Every open run was ended KILLED on the way out; registration comes last, so an
            # interrupted training never moves an alias.
            print("interrupted: open MLflow runs marked KILLED, no alias moved", file=sys.stderr)
        return 130
    print()
    print(summary_table(summaries))
    print(describe_registration(registration))
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s; open the runs with "
        f"`mlflow ui --backend-store-uri {redact_url(config.tracking_uri)}`"
    )
    return 0


def interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a scheduler, `kill`) ends runs as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["predict"]:
        return predict.main(arguments[1:])
    return train(config_from_args(build_parser().parse_args(arguments)))
