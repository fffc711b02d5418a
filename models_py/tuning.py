"""Optuna study minimizing the mean fold Brier of the served model over the rolling CV folds.

The objective scores exactly what users get: LightGBM's probabilities, calibrated on the
out-of-fold predictions of the seasons before each fold and normalised per race. Each season's
LightGBM training set (the CV folds and the calibration seasons before the first one) is built
once per study and reused by every trial; only booster parameters are searched, so the binned
datasets stay valid. After each CV fold the running mean Brier is reported so the pruner can
stop hopeless trials. No early stopping: choosing the number of trees on the validation season
would leak it into model selection, so `n_estimators` is searched like any other parameter.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from models_py.config import TrainConfig
from models_py.dataset import FeatureData
from models_py.evaluation import split
from models_py.folds import Fold, window_before
from models_py.metrics import evaluate
from models_py.modelling import (
    DATASET_PARAMS,
    lightgbm_training_params,
    split_scale_pos_weight,
)
from models_py.postprocessing import PostProcessor, ProbabilityPostProcessor, fit_on_history
from models_py.tracking import artifact_folder, log_params, redact_url, tracked_run

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SurplusTrial(Exception):
    """A worker started a trial after the shared study already had all it asked for."""


@dataclass(frozen=True)
class PreparedFold:
    fold: Fold
    train_set: lgb.Dataset
    valid_features: np.ndarray
    valid_target: np.ndarray
    valid_races: np.ndarray
    # False for the seasons before the first CV fold, scored only to calibrate the first folds.
    is_cv_fold: bool = True


def prepare_folds(
    data: FeatureData, folds: list[Fold], calibration_seasons: int = 0
) -> list[PreparedFold]:
    """The CV folds, preceded by the `calibration_seasons` seasons before the first one."""
    first = folds[0].valid_year
    window = len(folds[0].train_years)
    history = [
        window_before(season, window) for season in range(first - calibration_seasons, first)
    ]
    prepared = []
    for fold in [*history, *folds]:
        train, valid = split(data, fold)
        train_set = lgb.Dataset(
            train[data.features],
            label=train[data.spec.target].to_numpy(dtype=int),
            categorical_feature=list(data.categorical),
            # Keep every feature splittable whatever min_child_samples a trial picks.
            params={**DATASET_PARAMS, "feature_pre_filter": False},
            free_raw_data=False,
        ).construct()
        prepared.append(
            PreparedFold(
                fold=fold,
                train_set=train_set,
                valid_features=valid[data.features].to_numpy(dtype=np.float64),
                valid_target=valid[data.spec.target].to_numpy(dtype=int),
                valid_races=valid["race_id"].to_numpy(),
                is_cv_fold=fold in folds,
            )
        )
    return prepared


def trials_before(trial: optuna.Trial) -> int:
    """Trials (running or finished) that the storage numbered before this one."""
    return sum(
        1
        for other in trial.study.get_trials(deepcopy=False)
        if other.number < trial.number and other.state != TrialState.FAIL
    )


def suggest_params(trial: optuna.Trial, tune_class_weight: bool = False) -> dict[str, Any]:
    """The search space leans towards strong regularisation: slow learning, few leaves, many
    rows per leaf, L1/L2 and bagging. Class weighting is searched only on request: weighting
    podiums up inflates probabilities that calibration would then have to undo."""
    params: dict[str, Any] = {
        "n_estimators": trial.suggest_int("n_estimators", 100, 1500, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.003, 0.1, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 48),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 300),
        "subsample": trial.suggest_float("subsample", 0.4, 1.0),
        # Bagging only happens with a frequency; without it `subsample` would be ignored.
        "subsample_freq": trial.suggest_int("subsample_freq", 1, 10),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 30.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }
    if tune_class_weight:
        params["scale_pos_weight"] = trial.suggest_float("scale_pos_weight", 1.0, 10.0)
    return params


@dataclass
class Objective:
    prepared: list[PreparedFold]
    seed: int
    threads: int
    requested_trials: int
    log_to_mlflow: bool = True
    postprocessor: PostProcessor = field(default_factory=ProbabilityPostProcessor)
    calibration_seasons: int = 0
    tune_class_weight: bool = False
    scale_pos_weight: float = 1.0

    def __call__(self, trial: optuna.Trial) -> float:
        if trials_before(trial) >= self.requested_trials:
            # Workers sharing the study raced for its last trial and this one lost.
            trial.study.stop()
            raise SurplusTrial(
                f"trial {trial.number}: the study already has its {self.requested_trials}"
            )
        started = time.perf_counter()
        hyperparameters, weight = split_scale_pos_weight(
            suggest_params(trial, self.tune_class_weight)
        )
        native, rounds = lightgbm_training_params(
            hyperparameters,
            self.seed,
            self.threads,
            weight if weight is not None else self.scale_pos_weight,
        )
        fold_metrics: list[dict[str, float]] = []
        history: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        try:
            for fold in self.prepared:
                booster = lgb.train(native, fold.train_set, num_boost_round=rounds)
                raw = booster.predict(fold.valid_features)
                if fold.is_cv_fold:
                    recent = (
                        history[-self.calibration_seasons :] if self.calibration_seasons else []
                    )
                    postprocessor = fit_on_history(self.postprocessor, recent)
                    probability = postprocessor.apply(fold.valid_races, raw)
                    fold_metrics.append(evaluate(fold.valid_races, fold.valid_target, probability))
                    running_brier = float(np.mean([metrics["brier"] for metrics in fold_metrics]))
                    trial.report(running_brier, len(fold_metrics) - 1)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after {len(fold_metrics)} folds")
                history.append((fold.valid_races, raw, fold.valid_target))
        except optuna.TrialPruned:
            self.log_trial(trial, fold_metrics, "PRUNED", time.perf_counter() - started)
            raise
        self.log_trial(trial, fold_metrics, "COMPLETE", time.perf_counter() - started)
        return float(np.mean([metrics["brier"] for metrics in fold_metrics]))

    def log_trial(
        self, trial: optuna.Trial, fold_metrics: list[dict[str, float]], state: str, seconds: float
    ) -> None:
        mean = {
            f"mean_{name}": float(np.mean([metrics[name] for metrics in fold_metrics]))
            for name in fold_metrics[0]
        }
        print(
            f"  trial {trial.number:>3} {state.lower():<8} mean brier {mean['mean_brier']:.4f} "
            f"over {len(fold_metrics)} folds ({seconds:.1f} s)",
            flush=True,
        )
        if not self.log_to_mlflow:
            return
        with tracked_run(run_name=f"trial {trial.number}", nested=True):
            mlflow.log_params({**trial.params, "trial_number": trial.number})
            mlflow.log_metrics({**mean, "folds_evaluated": len(fold_metrics), "seconds": seconds})
            mlflow.set_tags({"optuna.state": state, "optuna.trial_number": str(trial.number)})


def storage_from_url(url: str | None) -> optuna.storages.BaseStorage | str | None:
    """None (in memory), a journal file (`journal:PATH` or a path ending .log / .journal) or an
    RDB URL (sqlite:///…, postgresql://…) that Optuna opens itself."""
    if url is None:
        return None
    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if url.endswith((".log", ".journal")) and "://" not in url:
        return JournalStorage(JournalFileBackend(url))
    return url


def create_study(storage_url: str | None, study_name: str, seed: int) -> optuna.Study:
    # Trials report through MLflow and one line each; Optuna's own INFO lines would repeat them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shared = storage_url is not None
    # Workers of one shared study must not draw the same parameters: each seeds its sampler
    # differently, and the constant liar keeps them from piling onto one running region.
    # A study of one process stays reproducible from --seed.
    sampler = optuna.samplers.TPESampler(
        seed=seed + os.getpid() if shared else seed, constant_liar=shared
    )
    return optuna.create_study(
        study_name=study_name,
        storage=storage_from_url(storage_url),
        direction="minimize",
        sampler=sampler,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        load_if_exists=True,
    )


class StudyMismatchError(RuntimeError):
    """A shared study was started for other folds or other features."""


def check_study_protocol(study: optuna.Study, protocol: dict[str, str]) -> None:
    """Record what the study tunes for; refuse to join one that tuned for something else.

    Brier values from other folds or other feature definitions are not comparable, so mixing
    them in one study would pick its best trial on meaningless numbers.
    """
    recorded = study.user_attrs.get("protocol")
    if recorded is None:
        study.set_user_attr("protocol", protocol)
        return
    differences = [
        f"{key} {recorded.get(key)!r} here {value!r}"
        for key, value in protocol.items()
        if recorded.get(key) != value
    ]
    if differences:
        raise StudyMismatchError(
            f"study {study.study_name!r} was tuned for other settings: " + "; ".join(differences)
        )


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def run_study(study: optuna.Study, objective: Objective, trials: int) -> None:
    """Run trials until the study (shared or not) holds `trials` finished ones."""
    remaining = trials - len(finished_trials(study))
    if remaining <= 0:
        return
    study.optimize(
        objective,
        n_trials=remaining,
        callbacks=[optuna.study.MaxTrialsCallback(trials, states=FINISHED)],
        catch=(SurplusTrial,),
        gc_after_trial=False,
    )


def save_study_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances, parallel coordinates and slices."""
    from optuna.visualization import matplotlib as optuna_plots

    plotters = {
        "optimization_history": optuna_plots.plot_optimization_history,
        "param_importances": optuna_plots.plot_param_importances,
        "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
        "slice": optuna_plots.plot_slice,
    }
    saved = []
    for name, plot in plotters.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as error:
                print(f"  (no {name} plot: {error})")
                continue
        figure = np.ravel(axes)[0].figure if isinstance(axes, np.ndarray) else axes.figure
        figure.set_size_inches(11, 6)
        path = folder / f"study_{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
        saved.append(path)
    return saved


def tune(
    config: TrainConfig,
    data: FeatureData,
    folds: list[Fold],
    study_name: str,
    tags: dict[str, str],
    postprocessor: PostProcessor,
    nested: bool = False,
) -> dict:
    """Run (or join) the Optuna study under one MLflow parent run; return the best parameters."""
    print(f"tuning: study {study_name!r}, {config.trials} trials in total", flush=True)
    started = time.perf_counter()
    run_tags = {**tags, "pitwall.role": "study", "optuna.study_name": study_name}
    with tracked_run(run_name=f"optuna study {study_name}", tags=run_tags, nested=nested):
        log_params(
            {
                "study_name": study_name,
                "trials_requested": config.trials,
                "storage": redact_url(config.storage) if config.storage else "in-memory",
                "sampler": f"TPESampler(seed={config.seed})",
                "pruner": "MedianPruner(n_startup_trials=5, n_warmup_steps=3)",
                "objective": "mean fold Brier of the served probabilities",
                "postprocessing": postprocessor.describe(),
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
                "postprocessing": postprocessor.describe(),
                "calibration_seasons": str(config.calibration_seasons),
                "tune_class_weight": str(config.tune_class_weight),
            },
        )
        calibration_seasons = config.calibration_seasons if postprocessor.needs_history else 0
        objective = Objective(
            prepare_folds(data, folds, calibration_seasons),
            config.seed,
            config.threads,
            config.trials,
            postprocessor=postprocessor,
            calibration_seasons=calibration_seasons,
            tune_class_weight=config.tune_class_weight,
            scale_pos_weight=config.scale_pos_weight,
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
