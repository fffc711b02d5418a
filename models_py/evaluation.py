"""Fit a model on each fold's training seasons, score its validation season, post-process.

Seasons are scored in calendar order and their raw out-of-sample scores kept, so that the
post-processor serving season S is fitted on the scores of the seasons just before S, each
scored by a model that never saw it: the same recipe the served model follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models_py.dataset import FeatureData
from models_py.folds import Fold, window_before
from models_py.metrics import evaluate
from models_py.modelling import PodiumModel
from models_py.postprocessing import RAW, PostProcessor, fit_on_history

PREDICTION_COLUMNS = ["race_id", "driver_id", "year", "round", "driver_name", "constructor_name"]
DEFAULT_CALIBRATION_SEASONS = 5


class FoldDataError(ValueError):
    """A fold has no rows or no podiums: an error, never a silent skip."""


@dataclass(frozen=True)
class SeasonScores:
    """A model trained on a fold's training seasons and its raw scores on the fold's season."""

    fold: Fold
    model: PodiumModel
    rows: pd.DataFrame  # PREDICTION_COLUMNS, actual, raw
    train_rows: int
    seconds: float

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            self.rows["race_id"].to_numpy(),
            self.rows["raw"].to_numpy(),
            self.rows["actual"].to_numpy(),
        )


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    model: PodiumModel
    metrics: dict[str, float]
    predictions: pd.DataFrame  # PREDICTION_COLUMNS, actual, raw, probability
    train_rows: int
    seconds: float
    postprocessor: PostProcessor = field(default=RAW)


def split(data: FeatureData, fold: Fold) -> tuple[pd.DataFrame, pd.DataFrame]:
    past = data.past
    train = past[past["year"].isin(fold.train_years)]
    valid = past[past["year"] == fold.valid_year]
    target = data.spec.target
    for label, part in (("training", train), ("validation", valid)):
        if part.empty:
            raise FoldDataError(f"{fold.describe()}: the {label} seasons have no rows")
        if part[target].sum() == 0:
            raise FoldDataError(f"{fold.describe()}: the {label} seasons have no podium")
    return train, valid


def score_season(
    make_model: Callable[[], PodiumModel], data: FeatureData, fold: Fold
) -> SeasonScores:
    started = time.perf_counter()
    train, valid = split(data, fold)
    target = data.spec.target
    label = data.spec.ranking_label
    model = make_model().fit(
        train[data.features],
        train[target].to_numpy(dtype=int),
        race_ids=train["race_id"].to_numpy(),
        finish_position=train[label].to_numpy() if label else None,
    )
    rows = valid[PREDICTION_COLUMNS].assign(
        actual=valid[target].to_numpy(dtype=int), raw=model.score(valid[data.features])
    )
    return SeasonScores(
        fold=fold,
        model=model,
        rows=rows.reset_index(drop=True),
        train_rows=len(train),
        seconds=time.perf_counter() - started,
    )


def finish(scores: SeasonScores, postprocessor: PostProcessor, seconds: float) -> FoldResult:
    rows = scores.rows
    probability = postprocessor.apply(rows["race_id"].to_numpy(), rows["raw"].to_numpy())
    actual = rows["actual"].to_numpy()
    return FoldResult(
        fold=scores.fold,
        model=scores.model,
        metrics=evaluate(rows["race_id"].to_numpy(), actual, probability),
        predictions=rows.assign(probability=probability),
        train_rows=scores.train_rows,
        seconds=seconds,
        postprocessor=postprocessor,
    )


class SeasonRunner:
    """Scores seasons for one model recipe, once each, and post-processes them on request."""

    def __init__(
        self,
        make_model: Callable[[], PodiumModel],
        make_postprocessor: Callable[[], PostProcessor],
        data: FeatureData,
        window: int,
        calibration_seasons: int = DEFAULT_CALIBRATION_SEASONS,
    ) -> None:
        self.make_model = make_model
        self.make_postprocessor = make_postprocessor
        self.data = data
        self.window = window
        self.calibration_seasons = calibration_seasons
        self.scored: dict[Fold, SeasonScores] = {}

    def scores(self, fold: Fold) -> SeasonScores:
        if fold not in self.scored:
            self.scored[fold] = score_season(self.make_model, self.data, fold)
        return self.scored[fold]

    def result(self, fold: Fold) -> FoldResult:
        """The fold's validation season, post-processed by a post-processor fitted on the raw
        out-of-sample scores of the `calibration_seasons` seasons before it."""
        scores = self.scores(fold)
        started = time.perf_counter()
        postprocessor = self.make_postprocessor()
        if postprocessor.needs_history:
            history = [
                self.scores(window_before(season, self.window))
                for season in range(fold.valid_year - self.calibration_seasons, fold.valid_year)
            ]
            postprocessor = fit_on_history(postprocessor, [item.history() for item in history])
        return finish(scores, postprocessor, scores.seconds + time.perf_counter() - started)


def fit_and_score(
    make_model: Callable[[], PodiumModel],
    data: FeatureData,
    fold: Fold,
    postprocessor: PostProcessor = RAW,
) -> FoldResult:
    """One fold with a post-processor that needs no history (raw or normalised only)."""
    if postprocessor.needs_history:
        raise ValueError("a post-processor fitted on earlier seasons needs a SeasonRunner")
    scores = score_season(make_model, data, fold)
    return finish(scores, postprocessor, scores.seconds)


def summarize(results: list[FoldResult]) -> dict[str, float]:
    """Mean and standard deviation of each metric over folds."""
    table = pd.DataFrame([result.metrics for result in results])
    summary: dict[str, float] = {}
    for name in table.columns:
        summary[f"cv_{name}_mean"] = float(table[name].mean())
        summary[f"cv_{name}_std"] = float(table[name].std(ddof=0))
    return summary


def fold_table(results: list[FoldResult]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "valid_season": result.fold.valid_year,
                "train_first": result.fold.train_years[0],
                "train_last": result.fold.train_years[-1],
                "train_rows": result.train_rows,
                "valid_rows": len(result.predictions),
                **result.metrics,
                "seconds": round(result.seconds, 3),
            }
            for result in results
        ]
    )


def pooled_predictions(results: list[FoldResult]) -> pd.DataFrame:
    return pd.concat([result.predictions for result in results], ignore_index=True)


def folds_better(
    results: list[FoldResult], reference: list[FoldResult], metric: str = "brier"
) -> int:
    """How many folds have a lower `metric` than the same fold of `reference`."""
    theirs = {result.fold.valid_year: result.metrics[metric] for result in reference}
    return sum(
        1
        for result in results
        if result.fold.valid_year in theirs
        and result.metrics[metric] < theirs[result.fold.valid_year]
    )
