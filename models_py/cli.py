"""`python train.py [COMMAND]`: parse the command line and hand over to `models_py.workflows`.

With no command, `train` is meant. Exit codes: 0 ok, 2 bad input or usage, 3 busy,
130 interrupted (see `models_py.settings`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from models_py.settings import (
    DEFAULT_EXPERIMENT,
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_MODEL_NAME,
    DEFAULT_STUDY_STORAGE,
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Locations,
    Protocol,
)

if TYPE_CHECKING:
    from models_py import training

COMMANDS = ("train", "tune", "predict", "refit", "replay", "ablation")
MOMENT_CHOICES = ("pre-qualifying", "post-qualifying")
# What an interrupted command leaves behind, said on its way out (exit 130).
INTERRUPTED = {
    "train": "open MLflow runs marked KILLED, no alias moved",
    "tune": "open MLflow runs marked KILLED; finished trials stay in the study, unstarted "
    "ones stay queued for the next tune",
    "predict": "nothing stored",
    "refit": "open MLflow runs marked KILLED; the champion alias is where it was",
    "replay": "open MLflow runs marked KILLED; forecasts stored so far stay",
    "ablation": "open MLflow runs marked KILLED",
}


def location_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where things live")
    group.add_argument(
        "--warehouse", type=Path, help="DuckDB file (default: $PITWALL_DUCKDB or ./pitwall.duckdb)"
    )
    group.add_argument(
        "--dbt-manifest",
        type=Path,
        help="dbt manifest declaring the feature list (default dbt_project/target/manifest.json)",
    )
    group.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)",
    )
    group.add_argument(
        "--artifact-root",
        type=Path,
        help="artifact folder of new experiments on a local store (default ./mlartifacts)",
    )


def protocol_options(parser: argparse.ArgumentParser) -> None:
    defaults = Protocol()
    group = parser.add_argument_group("evaluation protocol")
    group.add_argument(
        "--window",
        type=int,
        default=defaults.window,
        help="training seasons per fold (%(default)s)",
    )
    group.add_argument(
        "--first-cv-season",
        type=int,
        default=defaults.first_cv_season,
        help="first validation season (%(default)s)",
    )
    group.add_argument(
        "--last-cv-season",
        type=int,
        default=defaults.last_cv_season,
        help="last validation season (%(default)s)",
    )
    group.add_argument(
        "--test-season",
        type=int,
        default=defaults.test_season,
        help="holdout season, never seen by CV or tuning (%(default)s)",
    )
    group.add_argument(
        "--calibration-seasons",
        type=int,
        default=defaults.calibration_seasons,
        help="earlier seasons whose out-of-fold scores fit each fold's calibration (%(default)s)",
    )
    group.add_argument("--seed", type=int, default=defaults.seed, help="random seed (%(default)s)")
    group.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="folds fitted side by side, one thread each; results do not depend on it "
        "(%(default)s)",
    )
    parser.add_argument(
        "--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment (%(default)s)"
    )


def study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help=f"Optuna storage: a journal file or an RDB URL such as postgresql://… "
        f"(default: {DEFAULT_STUDY_STORAGE} in the repository root)",
    )


def moment_options(parser: argparse.ArgumentParser, default: str, both: bool) -> None:
    choices = (*MOMENT_CHOICES, "both") if both else MOMENT_CHOICES
    parser.add_argument(
        "--moment",
        choices=choices,
        default=default,
        help="pre-qualifying (practice at most) or post-qualifying (the qualifying "
        "classification and sprint known) (%(default)s)",
    )


def moments_from(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = MOMENT_CHOICES if args.moment == "both" else (args.moment,)
    return tuple(moment.replace("-", "_") for moment in chosen)


def parameter(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train, tune and serve the podium model on podium_features, tracked in "
        "MLflow. With no command, `train` is run.",
        epilog="Exit codes: 0 ok, 2 bad input or usage, 3 busy, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="rolling CV + holdout of the podium model and the baselines; register (default)",
        description="Rolling-season CV and the holdout season for the podium model (fixed "
        "default parameters, or a study's best) and the cheap baselines; the served model "
        "(ONNX graph + post-processing) is registered, and becomes champion only if its "
        "holdout Brier beats the champion's, re-scored now on the same rows.",
    )
    protocol_options(train)
    train.add_argument(
        "--params-from-study",
        nargs="?",
        const="",
        metavar="NAME",
        help="train with the best trial of a study (default name: the one `tune` uses for "
        "this protocol and these features)",
    )
    study_options(train)
    train.add_argument(
        "--param",
        type=parameter,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one LightGBM parameter (repeatable), e.g. --param num_leaves=8",
    )
    train.add_argument("--no-baselines", action="store_true", help="skip the four baselines")
    train.add_argument(
        "--challenger",
        action="store_true",
        help="also measure the research challenger (lambdarank + Plackett-Luce); never served",
    )
    train.add_argument(
        "--no-calibration", action="store_true", help="serve LightGBM's probabilities uncalibrated"
    )
    train.add_argument(
        "--no-normalisation", action="store_true", help="do not make each race sum to 3"
    )
    train.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help="registered model (%(default)s; the post-qualifying one is NAME-post-qualifying)",
    )
    moment_options(train, "both", both=True)
    location_options(train)

    tune = commands.add_parser(
        "tune",
        help="add trials to the Optuna study of this protocol (persistent, resumable)",
        description="Add trials to the study named after this protocol and feature SQL, in a "
        "persistent Optuna storage: a second call resumes it. Each trial is the CV of the "
        "podium model with sampled parameters; the Wilcoxon pruner stops trials that are "
        "significantly worse than the best on the same folds.",
    )
    protocol_options(tune)
    tune.add_argument(
        "--trials",
        type=int,
        help="trials to add to the study's queue (default 50; with --worker 0: run the trials "
        "others queued)",
    )
    study_options(tune)
    tune.add_argument("--study-name", help="study name (default: derived from the protocol)")
    tune.add_argument(
        "--worker",
        action="store_true",
        help="one of several processes running one study's queued trials at the same time",
    )
    tune.add_argument(
        "--heartbeat",
        type=int,
        default=DEFAULT_HEARTBEAT_SECONDS,
        help="seconds between the heartbeats of a running trial in an RDB storage; a trial "
        "silent for four of them (its worker died) is failed and queued again (%(default)s)",
    )
    location_options(tune)

    predict = commands.add_parser(
        "predict",
        help="score the upcoming race (or --race-id) with the champion and store it",
        description="Score the upcoming race (or any race) with a registered model and store "
        "the probabilities for the `predictions` model in dbt.",
    )
    predict.add_argument(
        "--model-name", default=DEFAULT_MODEL_NAME, help="registered model (%(default)s)"
    )
    predict.add_argument("--alias", default="champion", help="registry alias (%(default)s)")
    predict.add_argument("--race-id", type=int, help="score this race instead of the upcoming one")
    moment_options(predict, "pre-qualifying", both=False)
    predict.add_argument(
        "--store",
        type=Path,
        help="predictions store (default: $PITWALL_PREDICTIONS_DIR or ./predictions)",
    )
    location_options(predict)

    refit = commands.add_parser(
        "refit",
        help="refit the champions' recipes up to the last race with results (after a refresh)",
        description="Refit each moment's champion recipe (features, parameters, "
        "post-processing) on the latest seasons up to the last race with results, and register "
        "it as what `champion` serves. Seconds, not minutes: run it after each `make refresh`.",
    )
    refit.add_argument(
        "--model-name", default=DEFAULT_MODEL_NAME, help="registered model (%(default)s)"
    )
    moment_options(refit, "both", both=True)
    refit.add_argument(
        "--force", action="store_true", help="refit even if the data has not changed"
    )
    refit.add_argument(
        "--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment (%(default)s)"
    )
    location_options(refit)

    replay = commands.add_parser(
        "replay",
        help="walk the weekly loop race by race through a past season",
        description="For each race of a past season: the serving refit as of the race "
        "before and the model frozen at the season's start (the holdout model), at both "
        "moments, scored on the race's actual entrants and stored like live forecasts with a "
        "replay label (`prediction_scorecard`). Would this have worked last season?",
    )
    replay.add_argument(
        "--season", type=int, default=Protocol().test_season, help="season (%(default)s)"
    )
    replay.add_argument("--from", dest="first_round", type=int, help="first round (1)")
    replay.add_argument("--to", dest="last_round", type=int, help="last round (the last run)")
    replay.add_argument(
        "--model-name", default=DEFAULT_MODEL_NAME, help="registered model (%(default)s)"
    )
    replay.add_argument("--alias", default="champion", help="whose recipe (%(default)s)")
    moment_options(replay, "both", both=True)
    replay.add_argument(
        "--store",
        type=Path,
        help="predictions store (default: $PITWALL_PREDICTIONS_DIR or ./predictions)",
    )
    replay.add_argument(
        "--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment (%(default)s)"
    )
    location_options(replay)

    ablation = commands.add_parser(
        "ablation",
        help="research: the forecast-quality levers one at a time, tracked in MLflow",
        description="Research, run on request: every lever (class weight, calibration, "
        "normalisation, parameters, each feature group, the candidates, a study, the ranking "
        "challenger) added one at a time on the same folds.",
    )
    protocol_options(ablation)
    ablation.add_argument(
        "--trials",
        type=int,
        default=0,
        help="trials of a study for the tuned step (%(default)s: no tuned step)",
    )
    location_options(ablation)
    return parser


def protocol_from(args: argparse.Namespace) -> Protocol:
    return Protocol(
        window=args.window,
        first_cv_season=args.first_cv_season,
        last_cv_season=args.last_cv_season,
        test_season=args.test_season,
        calibration_seasons=args.calibration_seasons,
        seed=args.seed,
        workers=args.workers,
    )


def locations_from(args: argparse.Namespace) -> Locations:
    return Locations.from_environment(
        warehouse=args.warehouse,
        dbt_manifest=args.dbt_manifest,
        tracking_uri=args.tracking_uri,
        artifact_root=args.artifact_root,
        predictions_dir=getattr(args, "store", None),
    )


def train_options(args: argparse.Namespace) -> training.TrainOptions:
    from models_py import training

    locations, protocol = locations_from(args), protocol_from(args)
    params, origin, study = None, "project defaults", None
    if args.params_from_study is not None:
        params, study = training.params_from_study(
            locations, protocol, args.storage, args.params_from_study or None
        )
        origin = f"best of study {study}"
    if args.param:
        from models_py.models import DEFAULT_LGBM_PARAMS

        params = {**(params or DEFAULT_LGBM_PARAMS), **dict(args.param)}
        origin += " with " + ", ".join(f"{key}={value}" for key, value in args.param)
    return training.TrainOptions(
        locations=locations,
        protocol=protocol,
        experiment=args.experiment,
        model_name=args.model_name,
        moments=moments_from(args),
        params=params,
        params_origin=origin,
        study_name=study,
        baselines=not args.no_baselines,
        challenger=args.challenger,
        calibrate=not args.no_calibration,
        normalise=not args.no_normalisation,
    )


def dispatch(args: argparse.Namespace) -> None:
    from models_py import season, training

    if args.command == "train":
        training.train(train_options(args))
    elif args.command == "tune":
        training.tune(
            locations_from(args),
            protocol_from(args),
            args.experiment,
            args.trials if args.trials is not None else (0 if args.worker else 50),
            args.storage,
            args.study_name,
            args.worker,
            args.heartbeat,
        )
    elif args.command == "predict":
        season.predict(
            locations_from(args), args.model_name, args.alias, args.race_id, moments_from(args)[0]
        )
    elif args.command == "refit":
        season.refit(
            locations_from(args), args.model_name, moments_from(args), args.experiment, args.force
        )
    elif args.command == "replay":
        season.replay(
            locations_from(args),
            args.model_name,
            args.alias,
            args.season,
            args.first_round,
            args.last_round,
            moments_from(args),
            args.experiment,
        )
    else:
        from models_py.experiments.ablation import run_ablation

        run_ablation(locations_from(args), protocol_from(args), args.experiment, args.trials)


def run(args: argparse.Namespace) -> int:
    """Run a command; known failures become one line on stderr and the project's exit code."""
    # Imported here, so that `--help` and usage errors answer at once.
    from mlflow.exceptions import MlflowException

    from models_py import evaluation, features, folds, serving, tracking, training, tuning

    bad_input = (
        training.BadInput,
        features.FeatureError,
        folds.FoldError,
        evaluation.FoldDataError,
        tuning.StudyError,
        serving.ServingError,
        serving.ParityError,
    )
    try:
        dispatch(args)
    except bad_input as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (tracking.StoreBusyError, features.WarehouseBusyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUSY
    except MlflowException as error:
        print(f"error: MLflow: {error.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"interrupted: {INTERRUPTED[args.command]}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


# Code an interrupt must not land in: a KeyboardInterrupt raised inside an SQLAlchemy call can
# leave the local SQLite store locked, and then the runs cannot be ended. (Only database calls:
# a tracking server that does not answer must not make Ctrl-C wait.)
STORE_CODE = ("sqlalchemy.", "sqlite3")
RETRY_INTERRUPT_SECONDS = 0.05
_deferred: list[int] = []  # the signal waiting for a store call to end


def inside_store_call(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(STORE_CODE):
            return True
        frame = frame.f_back
    return False


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C and SIGTERM as KeyboardInterrupt, delivered outside database calls: one arriving
    during a call is raised a moment later (SIGALRM), once the call is over; a second one is
    raised at once."""
    if signum != signal.SIGALRM and _deferred:
        _deferred.clear()
        raise KeyboardInterrupt(f"signal {signum}")
    if inside_store_call(frame):
        if not _deferred:
            _deferred.append(signum)
        signal.setitimer(signal.ITIMER_REAL, RETRY_INTERRUPT_SECONDS)
        return
    if signum == signal.SIGALRM and not _deferred:
        return  # a retry left over from an interrupt already raised
    received = _deferred.pop() if _deferred else signum
    raise KeyboardInterrupt(f"signal {received}")


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a scheduler, `kill`) ends runs as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGALRM, interrupt)
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments or (arguments[0] not in COMMANDS and arguments[0] not in ("-h", "--help")):
        arguments = ["train", *arguments]
    try:
        return run(build_parser().parse_args(arguments))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # no deferred interrupt outlives the command
        _deferred.clear()
