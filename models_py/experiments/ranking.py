"""The race-coherent challenger: LightGBM lambdarank over each race's finishing order, turned
into P(top 3) by an exact Plackett-Luce race model with a temperature fitted on earlier seasons.

Measured beside the podium model by `train.py train --challenger` and the ablation; it has not
beaten the podium model on CV, so it is never served.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class _Prefixes(NamedTuple):
    """Every ordered way of filling the first few positions, for races of one size."""

    free: np.ndarray  # (prefixes, entrants) 1.0 where the entrant is still unplaced
    first_free: np.ndarray  # (prefixes,) lowest unplaced column
    parent: np.ndarray  # the longer prefixes: which prefix each extends...
    entrant: np.ndarray  # ...and with which entrant


@functools.lru_cache(maxsize=64)
def _prefix_levels(entrants: int, places: int) -> tuple[_Prefixes, ...]:
    levels = []
    placed = np.empty((1, 0), dtype=np.intp)
    for _ in range(places):
        free = np.ones((len(placed), entrants), dtype=bool)
        free[np.arange(len(placed))[:, None], placed] = False
        parent, entrant = np.nonzero(free)
        levels.append(_Prefixes(free.astype(float), free.argmax(axis=1), parent, entrant))
        placed = np.column_stack([placed[parent], entrant])
    return tuple(levels)


def _top_k_sorted(scores: np.ndarray, temperature: float, places: int) -> np.ndarray:
    """Exact Plackett-Luce top-`places` probabilities for races of equal size.

    `scores` is (races, entrants), each row sorted best first, with more entrants than places.
    Walks the ordered prefixes of the finishing order one position at a time: each unplaced
    entrant wins the next position with its share of the unplaced entrants' strength.
    """
    # Strengths relative to the best unplaced entrant, never to the race leader: at low
    # temperature the rest of the field underflows relative to the leader, never relative to
    # the best of itself. As rows are sorted, the best unplaced entrant of a prefix is its
    # lowest unplaced column, which is one of the first `places` columns in every race.
    gap = np.minimum(scores[:, None, :] - scores[:, :places, None], 0.0)
    strength = np.exp(gap / temperature)  # (races, best unplaced column, entrant)
    result = np.zeros(scores.shape)
    prefix_probability = np.ones((len(scores), 1))
    levels = _prefix_levels(scores.shape[1], places)
    for position, level in enumerate(levels):
        # Prefix probability over total unplaced strength: all sums of non-negative terms,
        # so no cancellation however lopsided the race.
        per_strength = np.empty_like(prefix_probability)
        for best in range(position + 1):
            chosen = level.first_free == best
            remaining = strength[:, best, :] @ level.free[chosen].T
            per_strength[:, chosen] = prefix_probability[:, chosen] / remaining
            result += strength[:, best, :] * (per_strength[:, chosen] @ level.free[chosen])
        if position + 1 < places:
            best = level.first_free[level.parent]
            prefix_probability = per_strength[:, level.parent] * strength[:, best, level.entrant]
    # Rounding can put a near-certain podium a hair above 1.
    return np.minimum(result, 1.0)


def _top_k_races(scores: np.ndarray, temperature: float, places: int) -> np.ndarray:
    """`_top_k_sorted` for (races, entrants) scores in any order within each race."""
    if scores.shape[1] <= places:
        return np.ones(scores.shape)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = _top_k_sorted(np.take_along_axis(scores, order, axis=1), temperature, places)
    result = np.empty(scores.shape)
    np.put_along_axis(result, order, ranked, axis=1)
    return result


def _check_temperature(temperature: float) -> None:
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be positive and finite, got {temperature}")


def plackett_luce_top_k(
    scores: np.ndarray, temperature: float = 1.0, places: int = PODIUM_PLACES
) -> np.ndarray:
    """Probability that each entrant of one race finishes in the first `places` positions.

    Under Plackett-Luce the finishing order is drawn one position at a time, each remaining
    entrant winning the next position with probability proportional to
    exp(score / temperature). The result is exact and sums to min(places, entrants).
    """
    _check_temperature(temperature)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D (one race), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite, got NaN or infinity")
    return _top_k_races(scores[None, :], temperature, places)[0]


def _race_layout(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of every race, as one (races, entrants) array per distinct race size."""
    entrants = np.bincount(codes)
    rows_by_race = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(entrants)[:-1]])
    return [
        rows_by_race[starts[entrants == size][:, None] + np.arange(size)]
        for size in np.unique(entrants)
    ]


def _plackett_luce_layout(
    layout: list[np.ndarray], scores: np.ndarray, temperature: float, places: int
) -> np.ndarray:
    result = np.empty(len(scores))
    for rows in layout:
        result[rows] = _top_k_races(scores[rows], temperature, places)
    return result


def plackett_luce_by_race(
    race_ids: np.ndarray, scores: np.ndarray, temperature: float, places: int = PODIUM_PLACES
) -> np.ndarray:
    """`plackett_luce_top_k` for every race, aligned with the input rows."""
    _check_temperature(temperature)
    scores = np.asarray(scores, dtype=float)
    codes = race_codes(race_ids, scores, "scores")
    return _plackett_luce_layout(_race_layout(codes), scores, temperature, places)


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
    layout = _race_layout(codes)

    def loss(log_temperature: float) -> float:
        probability = _plackett_luce_layout(layout, scores, np.exp(log_temperature), places)
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
        self, race_ids: np.ndarray, scores: np.ndarray, actual: np.ndarray
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
