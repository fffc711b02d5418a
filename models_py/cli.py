"""`python train.py`: rolling-season CV of the podium model, its challenger and baselines,
tracked in MLflow; the better of the two models is registered with its post-processing."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from models_py import ablation, onnx_export, predict
from models_py.candidates import (
    NAIVE_BASELINE,
    PODIUM_MODEL,
    RULE_BASELINE,
    Candidate,
    baselines,
    podium_candidate,
    ranker_candidate,
    served_postprocessor,
)
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
from models_py.evaluation import (
    DEFAULT_CALIBRATION_SEASONS,
    FoldDataError,
    FoldResult,
    SeasonRunner,
    folds_better,
    summarize,
)
from models_py.folds import Fold, FoldError, protocol_folds
from models_py.metrics import METRIC_NAMES
from models_py.modelling import DEFAULT_LGBM_PARAMS, LightGBMModel, LightGBMRanker
from models_py.registry import Registration, register
from models_py.served import log_served_model, served_input
from models_py.tracking import (
    StoreBusyError,
    common_tags,
    configure,
    lock_local_store,
    log_comparison,
    log_cv_artifacts,
    log_dataset,
    log_fold_run,
    log_params,
    redact_url,
    tracked_run,
)
from models_py.tuning import StudyMismatchError, tune

PYFUNC_TOLERANCE = 1e-9
INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


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
        default=1.0,
        help="LightGBM scale_pos_weight (default 1: no class weighting, which would inflate "
        "every probability)",
    )
    parser.add_argument(
        "--tune-class-weight",
        action="store_true",
        help="let the study search scale_pos_weight in 1-10 as well",
    )
    parser.add_argument(
        "--calibration-seasons",
        type=int,
        default=DEFAULT_CALIBRATION_SEASONS,
        help="earlier seasons whose out-of-fold predictions fit each fold's calibration "
        f"(default {DEFAULT_CALIBRATION_SEASONS})",
    )
    parser.add_argument(
        "--no-calibration", action="store_true", help="serve LightGBM's probabilities uncalibrated"
    )
    parser.add_argument(
        "--no-normalisation",
        action="store_true",
        help="do not make each race's probabilities sum to 3",
    )
    parser.add_argument(
        "--no-challenger",
        action="store_true",
        help="skip the race-coherent ranking challenger (lambdarank + Plackett-Luce)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip the four baseline runs")
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
        tune_class_weight=args.tune_class_weight,
        calibration_seasons=args.calibration_seasons,
        calibrate=not args.no_calibration,
        normalise=not args.no_normalisation,
        challenger=not args.no_challenger,
        baselines=not args.no_baselines,
        trials=args.trials,
        storage=args.storage,
        study_name=args.study_name,
        tune_only=args.tune_only,
        model_name=args.model_name,
    )


@dataclass(frozen=True)
class CandidateRun:
    candidate: Candidate
    run_id: str
    results: list[FoldResult]
    holdout: FoldResult
    summary: dict[str, float]


def cross_validate(
    candidate: Candidate, config: TrainConfig, data: FeatureData, folds: list[Fold], holdout: Fold
) -> tuple[list[FoldResult], FoldResult]:
    """Every CV fold, then the holdout, each post-processed as the served model would be."""
    runner = SeasonRunner(
        candidate.make, candidate.postprocessor, data, config.window, config.calibration_seasons
    )
    results: list[FoldResult] = []
    started = time.perf_counter()
    for index, fold in enumerate(folds, start=1):
        result = runner.result(fold)
        results.append(result)
        print(
            f"  {candidate.name:<22} fold {index:>2}/{len(folds)} {fold.describe()}: "
            f"brier {result.metrics['brier']:.4f} auc {result.metrics['auc']:.3f} "
            f"({time.perf_counter() - started:.0f} s elapsed)",
            flush=True,
        )
    return results, runner.result(holdout)


def run_params(
    config: TrainConfig, data: FeatureData, folds: list[Fold], result: FoldResult
) -> dict:
    return {
        **{f"model.{key}": value for key, value in result.model.params().items()},
        "model": result.model.name,
        "postprocessing": result.postprocessor.describe(),
        "calibration_seasons": config.calibration_seasons,
        "features": ",".join(data.features),
        "categorical_features": ",".join(data.categorical),
        "window": config.window,
        "cv_valid_seasons": ",".join(str(fold.valid_year) for fold in folds),
        "test_season": config.test_season,
        "seed": config.seed,
    }


def comparisons(
    results: list[FoldResult], summary: dict[str, float], references: dict[str, CandidateRun]
) -> dict[str, float]:
    """Lift over the rule baseline, and the folds won against the naive rule."""
    compared: dict[str, float] = {}
    rule = references.get(RULE_BASELINE)
    reference = rule.summary if rule else summary
    compared["cv_brier_lift_vs_rule"] = reference["cv_brier_mean"] - summary["cv_brier_mean"]
    compared["cv_auc_lift_vs_rule"] = summary["cv_auc_mean"] - reference["cv_auc_mean"]
    naive = references.get(NAIVE_BASELINE)
    if naive is not None:
        compared["cv_folds_beating_naive"] = folds_better(results, naive.results)
        compared["cv_brier_lift_vs_naive"] = (
            naive.summary["cv_brier_mean"] - summary["cv_brier_mean"]
        )
    return compared


def train_candidate(
    candidate: Candidate,
    config: TrainConfig,
    data: FeatureData,
    folds: list[Fold],
    holdout_fold: Fold,
    tags: dict[str, str],
    references: dict[str, CandidateRun],
) -> CandidateRun:
    print(f"{candidate.name}: {candidate.description}", flush=True)
    run_name = (
        f"{candidate.name} w{config.window} cv{folds[0].valid_year}-{folds[-1].valid_year} "
        f"test{config.test_season}"
    )
    with tracked_run(run_name=run_name, tags={**tags, "pitwall.role": candidate.name}) as run:
        results, holdout = cross_validate(candidate, config, data, folds, holdout_fold)
        params = run_params(config, data, folds, holdout)
        log_params(params)
        summary = summarize(results)
        summary |= comparisons(results, summary, references)
        summary |= {f"holdout_{name}": value for name, value in holdout.metrics.items()}
        mlflow.log_metrics(summary)
        if candidate.servable:
            fold_params = {"model": params["model"], "window": config.window}
            for result in results:
                log_fold_run(result, fold_params)
        else:
            for result in results:
                mlflow.log_metrics(
                    {f"fold_{name}": value for name, value in result.metrics.items()},
                    step=result.fold.valid_year,
                )
        log_cv_artifacts(results, holdout)
        print(
            f"  {candidate.name:<22} CV brier {summary['cv_brier_mean']:.4f} "
            f"log loss {summary['cv_log_loss_mean']:.4f} auc {summary['cv_auc_mean']:.3f}; "
            f"holdout {config.test_season} brier {summary['holdout_brier']:.4f} "
            f"auc {summary['holdout_auc']:.3f}"
            + (
                f"; beats the naive rule in {summary['cv_folds_beating_naive']:.0f} "
                f"of {len(folds)} folds"
                if "cv_folds_beating_naive" in summary
                else ""
            ),
            flush=True,
        )
    return CandidateRun(candidate, run.info.run_id, results, holdout, summary)


def check_pyfunc(model_uri: str, example: pd.DataFrame, expected: np.ndarray) -> float:
    """The logged pyfunc must give the very probabilities the holdout metrics were computed on."""
    reloaded = mlflow.pyfunc.load_model(model_uri)
    difference = float(np.max(np.abs(np.asarray(reloaded.predict(example)) - expected)))
    if difference > PYFUNC_TOLERANCE:
        raise RuntimeError(
            f"the logged model does not reproduce the holdout probabilities "
            f"(max |diff| {difference:.2e})"
        )
    return difference


@dataclass(frozen=True)
class FinalModel:
    model_uri: str
    onnx_uri: str
    holdout_brier: float


def log_final_model(
    served: CandidateRun, data: FeatureData, runs: list[CandidateRun]
) -> FinalModel:
    """Dataset, encoding, the served pyfunc (checked), ONNX with parity: in the winner's run."""
    holdout = served.holdout
    model = holdout.model
    assert isinstance(model, LightGBMModel | LightGBMRanker) and model.booster is not None
    holdout_fold = holdout.fold
    with tracked_run(run_id=served.run_id):
        training = data.seasons(holdout_fold.train_years)
        training = training[~training["is_upcoming"]]
        log_dataset(
            data,
            training,
            name=f"podium_features_{holdout_fold.train_years[0]}_{holdout_fold.train_years[-1]}",
        )
        mlflow.log_dict(data.categories, "feature_encoding.json")
        holdout_rows = data.past[data.past["year"] == holdout_fold.valid_year]
        example = served_input(holdout_rows, data.features)
        expected = holdout.predictions["probability"].to_numpy()
        model_uri = log_served_model(model.booster, holdout.postprocessor, example, expected)
        mlflow.log_metric("pyfunc_max_abs_diff", check_pyfunc(model_uri, example, expected))

        holdout_features = holdout_rows[data.features]
        onnx_model = onnx_export.convert(model.booster, len(data.features))
        parity = onnx_export.check_parity(onnx_model, model.booster, holdout_features)
        mlflow.log_metric("onnx_max_abs_diff", parity)
        onnx_input = holdout_features.to_numpy(dtype=np.float32)
        onnx_info = mlflow.onnx.log_model(
            onnx_model,
            name="onnx_model",
            # A signature, not an input example: MLflow would validate the example through
            # JSON, which cannot carry the NaNs of missing features.
            signature=infer_signature(
                onnx_input, onnx_export.predict(onnx_export.session(onnx_model), onnx_input)
            ),
            onnx_execution_providers=["CPUExecutionProvider"],
        )
        log_comparison({run.candidate.name: run.results for run in runs}, served.candidate.name)
        mlflow.set_tags(
            {
                "model_uri": model_uri,
                "onnx_model_uri": onnx_info.model_uri,
                "pitwall.served": "true",
            }
        )
    print(f"  ONNX parity on {len(holdout_features)} holdout rows: max |diff| {parity:.1e}")
    return FinalModel(model_uri, onnx_info.model_uri, served.summary["holdout_brier"])


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


def choose_served(runs: dict[str, CandidateRun]) -> CandidateRun:
    """The challenger is served only if it beats the podium model on mean CV Brier."""
    servable = [run for run in runs.values() if run.candidate.servable]
    return min(
        servable, key=lambda run: (run.summary["cv_brier_mean"], run.candidate.name != PODIUM_MODEL)
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
    runs: dict[str, CandidateRun] = {}
    registration: Registration | None = None
    try:
        hyperparameters, origin = dict(DEFAULT_LGBM_PARAMS), "project defaults"
        if config.trials > 0 or config.storage:
            hyperparameters = tune(
                config, data, folds, study_name, tags, served_postprocessor(config)
            )
            origin = f"best of study {study_name}"
            tags = {**tags, "optuna.study_name": study_name}
        if config.tune_only:
            print(f"done in {time.perf_counter() - started:.0f} s (worker: no final model)")
            return 0
        candidates = baselines(config, data) if config.baselines else []
        if config.challenger:
            candidates.append(ranker_candidate(config, data, hyperparameters, origin))
        candidates.append(podium_candidate(config, data, hyperparameters, origin))
        for candidate in candidates:
            runs[candidate.name] = train_candidate(
                candidate, config, data, folds, holdout_fold, tags, runs
            )
        served = choose_served(runs)
        print(f"serving {served.candidate.name}: the lower mean CV Brier", flush=True)
        final = log_final_model(served, data, list(runs.values()))
        registration_tags = {
            "git_commit": tags["git_commit"],
            "data_version": tags["data_version"],
            "features": ",".join(data.features),
            "served_candidate": served.candidate.name,
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
    print(summary_table({name: run.summary for name, run in runs.items()}))
    print(describe_registration(registration))
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s; open the runs with "
        f"`mlflow ui --backend-store-uri {redact_url(config.tracking_uri)}`"
    )
    return 0


def describe_registration(registration: Registration) -> str:
    decision = registration.decision
    verdict = "promoted to champion" if decision.promoted else "left as challenger"
    return (
        f"registered {registration.model_name} v{registration.version} "
        f"(ONNX v{registration.onnx_version}): {verdict}: {decision.reason}"
    )


def interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a scheduler, `kill`) ends runs as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["predict"]:
        return predict.main(arguments[1:])
    if arguments[:1] == ["ablation"]:
        return ablation.main(
            arguments[1:], lambda rest: config_from_args(build_parser().parse_args(rest))
        )
    return train(config_from_args(build_parser().parse_args(arguments)))
