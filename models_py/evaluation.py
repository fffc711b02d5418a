"""Fit a model on each fold's training seasons and score its validation season."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from models_py.dataset import FeatureData
from models_py.folds import Fold
from models_py.metrics import evaluate
from models_py.modelling import PodiumModel

PREDICTION_COLUMNS = ["race_id", "driver_id", "year", "round", "driver_name", "constructor_name"]


class FoldDataError(ValueError):
    """A fold has no rows or no podiums: an error, never a silent skip."""


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    model: PodiumModel
    metrics: dict[str, float]
    predictions: pd.DataFrame
    train_rows: int
    seconds: float


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


def fit_and_score(
    make_model: Callable[[], PodiumModel], data: FeatureData, fold: Fold
) -> FoldResult:
    started = time.perf_counter()
    train, valid = split(data, fold)
    target = data.spec.target
    model = make_model().fit(train[data.features], train[target].to_numpy(dtype=int))
    probability = model.predict_proba(valid[data.features])
    actual = valid[target].to_numpy(dtype=int)
    predictions = valid[PREDICTION_COLUMNS].assign(actual=actual, probability=probability)
    return FoldResult(
        fold=fold,
        model=model,
        metrics=evaluate(valid["race_id"].to_numpy(), actual, probability),
        predictions=predictions.reset_index(drop=True),
        train_rows=len(train),
        seconds=time.perf_counter() - started,
    )


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
