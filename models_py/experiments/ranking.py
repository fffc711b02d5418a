"""The race-coherent challenger: LightGBM lambdarank over each race's finishing order, turned
into P(top 3) by an exact Plackett-Luce race model with a temperature fitted on earlier seasons.

Measured beside the podium model by `train.py train --challenger` and the ablation; it has not
beaten the podium model on CV, so it is never served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from models_py.models import (
    DATASET_PARAMS,
    DEFAULT_LGBM_PARAMS,
    Recipe,
    TrainingRows,
    lightgbm_params,
    predict_booster,
    train_booster,
)
from models_py.plackett_luce import (
    plackett_luce_by_race,
    plackett_luce_layout,
    race_layout,
)
from models_py.probability import PODIUM_PLACES, race_codes

RANKER = "lgbm_ranker"
_LOSS_EPS = 1e-6


def race_group_sizes(race_ids: np.ndarray) -> np.ndarray:
    """Row counts of consecutive races; LightGBM's ranking objectives need each race contiguous."""
    race_ids = np.asarray(race_ids)
    starts = np.flatnonzero(np.r_[True, race_ids[1:] != race_ids[:-1]])
    if len(np.unique(race_ids)) != len(starts):
        raise ValueError("the rows of each race must be contiguous to train a ranking model")
    return np.diff(np.r_[starts, len(race_ids)])


def finish_relevance(finish_position: np.ndarray, relevant_places: int) -> np.ndarray:
    """Graded relevance for the ranker: the winner `relevant_places`, then one less per place,
    0 from `relevant_places + 1` on, so the model learns the order at the front of the field."""
    return np.clip(relevant_places + 1 - np.asarray(finish_position, dtype=float), 0, None).astype(
        int
    )


@dataclass
class LightGBMRanker:
    """Lambdarank over each race's finishing order; scores only order a race's entrants."""

    features: tuple[str, ...]
    categorical: list[str]
    hyperparameters: Mapping[str, Any]
    seed: int
    threads: int
    relevant_places: int = 10
    name: str = RANKER
    booster: lgb.Booster | None = None

    def fit(self, rows: TrainingRows) -> LightGBMRanker:
        if rows.finish_position is None:
            raise ValueError("the ranker trains on finishing positions")
        native, rounds = self.native_params()
        dataset = lgb.Dataset(
            rows.matrix[list(self.features)],
            label=finish_relevance(rows.finish_position, self.relevant_places),
            group=race_group_sizes(rows.race_ids),
            categorical_feature=self.categorical or "auto",
            params=DATASET_PARAMS,
            free_raw_data=False,
        )
        self.booster = train_booster(native, dataset, rounds)
        return self

    def native_params(self) -> tuple[dict[str, Any], int]:
        native, rounds = lightgbm_params(
            self.hyperparameters, self.seed, self.threads, objective="lambdarank"
        )
        # Linear gains: LightGBM's default 2^label - 1 would make the race almost only about
        # the winner, while a podium has three places.
        native["label_gain"] = list(range(self.relevant_places + 1))
        native["lambdarank_truncation_level"] = self.relevant_places
        return native, rounds

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        return predict_booster(self.booster, matrix, self.features, self.threads)

    def params(self) -> dict[str, Any]:
        native, rounds = self.native_params()
        return {
            **native,
            "num_boost_round": rounds,
            "categorical_feature": self.categorical,
            "relevance": f"max(0, {self.relevant_places + 1} - finish_position)",
        }


def make_ranker(recipe: Recipe, categorical: list[str], seed: int, threads: int) -> LightGBMRanker:
    return LightGBMRanker(recipe.features, categorical, recipe.params, seed, threads)


def fit_temperature(
    race_ids: np.ndarray, scores: np.ndarray, actual: np.ndarray, places: int = PODIUM_PLACES
) -> float:
    """The Plackett-Luce temperature with the lowest mean log loss on the podium labels."""
    scores = np.asarray(scores, dtype=float)
    actual = np.asarray(actual, dtype=float)
    codes = race_codes(race_ids, scores, "scores")
    if actual.shape != scores.shape:
        raise ValueError(
            f"actual must line up with scores, got shapes {actual.shape} and {scores.shape}"
        )
    if not np.isin(actual, (0.0, 1.0)).all():
        raise ValueError("actual must hold only 0 and 1")
    # Races are grouped once; the search evaluates the model a few dozen times.
    layout = race_layout(codes)

    def loss(log_temperature: float) -> float:
        probability = plackett_luce_layout(layout, scores, np.exp(log_temperature), places)
        probability = np.clip(probability, _LOSS_EPS, 1.0 - _LOSS_EPS)
        return float(
            -np.mean(actual * np.log(probability) + (1.0 - actual) * np.log1p(-probability))
        )

    # Searching log-temperature treats "twice as sharp" and "half as sharp" symmetrically.
    search = minimize_scalar(
        loss, bounds=(np.log(0.02), np.log(50.0)), method="bounded", options={"xatol": 1e-4}
    )
    return float(np.exp(search.x))


@dataclass(frozen=True)
class PlackettLucePostProcessor:
    """Ranking scores → exact P(top 3) under Plackett-Luce, with a temperature fitted earlier."""

    temperature: float | None = None

    @property
    def needs_history(self) -> bool:
        return True

    def fit(
        self,
        race_ids: np.ndarray,
        scores: np.ndarray,
        actual: np.ndarray,
        finish_position: np.ndarray | None = None,
    ) -> PlackettLucePostProcessor:
        return PlackettLucePostProcessor(fit_temperature(race_ids, scores, actual))

    def apply(self, race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.temperature is None:
            raise RuntimeError("fit the temperature on earlier seasons before applying it")
        return plackett_luce_by_race(
            np.asarray(race_ids), np.asarray(scores, dtype=float), self.temperature
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "plackett_luce", "temperature": self.temperature}

    def describe(self) -> str:
        fitted = f" (temperature {self.temperature:.3f})" if self.temperature else ""
        return f"Plackett-Luce top-3 probabilities{fitted}"


def ranker_recipe(features: tuple[str, ...], params: Mapping[str, Any] | None) -> Recipe:
    """The challenger as `train.py train --challenger` measures it (never served)."""
    return Recipe(
        name=RANKER,
        kind="lambdarank",
        features=features,
        params=dict(DEFAULT_LGBM_PARAMS if params is None else params),
        calibrate=False,
        normalise=False,
    )
