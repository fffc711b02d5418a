"""Turn model scores into podium probabilities a user can read.

Three tools, from the lightest touch to a full race model:

- `PlattCalibration` reshapes probabilities so that "30 %" happens about 30 % of the time.
- `normalise_per_race` makes each race's probabilities add up to the three podium places.
- Plackett-Luce turns a race's scores into exact top-three probabilities of a sequential
  race model, with one fitted temperature controlling how decisive the scores are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models_py.metrics import PODIUM_PLACES

# The bisection bracket for the per-race logit shift. Logits are clipped to about ±13.8, so a
# shift of ±40 pushes every entrant to within 1e-11 of 0 or 1: the root always lies inside.
_SHIFT_BOUND = 40.0
_BISECTION_STEPS = 100
_LOSS_EPS = 1e-6


def logit(probability: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Log-odds of `probability`, clipped first so that 0 and 1 give finite values."""
    clipped = np.clip(np.asarray(probability, dtype=float), eps, 1.0 - eps)
    return np.log(clipped / (1.0 - clipped))


@dataclass(frozen=True)
class PlattCalibration:
    """P(podium) = sigmoid(slope * logit(p) + intercept), fitted on held-out predictions."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, probability: np.ndarray, actual: np.ndarray) -> PlattCalibration:
        probability = np.asarray(probability, dtype=float)
        actual = np.asarray(actual)
        if probability.shape != actual.shape or probability.ndim != 1:
            raise ValueError(
                f"probability and actual must be 1-D and equally long, "
                f"got shapes {probability.shape} and {actual.shape}"
            )
        classes = set(np.unique(actual).tolist())
        if not classes <= {0, 1}:
            raise ValueError(f"actual must hold only 0 and 1, got values {sorted(classes)}")
        if len(classes) < 2:
            raise ValueError("Platt calibration needs both podium (1) and non-podium (0) rows")
        # A huge C makes the fit plain maximum likelihood, while still keeping the slope finite
        # should the two classes be perfectly separated.
        model = LogisticRegression(C=1e6, max_iter=1000)
        model.fit(logit(probability)[:, None], actual.astype(int))
        return cls(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))

    def apply(self, probability: np.ndarray) -> np.ndarray:
        return expit(self.slope * logit(probability) + self.intercept)

    def to_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PlattCalibration:
        return cls(slope=float(values["slope"]), intercept=float(values["intercept"]))


IDENTITY = PlattCalibration(slope=1.0, intercept=0.0)


def _factorise(race_ids: np.ndarray, values: np.ndarray, name: str) -> np.ndarray:
    """Integer race codes 0..R-1 for each row, after checking rows line up and are finite."""
    race_ids = np.asarray(race_ids)
    if race_ids.ndim != 1 or race_ids.shape != values.shape:
        raise ValueError(
            f"race_ids and {name} must be 1-D and equally long, "
            f"got shapes {race_ids.shape} and {values.shape}"
        )
    bad = ~np.isfinite(values)
    if bad.any():
        races = list(dict.fromkeys(race_ids[bad].tolist()))
        raise ValueError(f"{name} is NaN or infinite in race(s) {races}")
    codes, _ = pd.factorize(race_ids, use_na_sentinel=False)
    return codes


def normalise_per_race(
    race_ids: np.ndarray, probability: np.ndarray, places: int = PODIUM_PLACES
) -> np.ndarray:
    """Make each race's probabilities sum to `places` (or to its entrant count, if smaller).

    Every logit in a race is shifted by the same constant. Unlike multiplying probabilities by
    places / sum, a logit shift can never push a probability to 1 or beyond (where log loss
    becomes infinite), and it leaves the order of drivers within the race unchanged. Races with
    no more entrants than places give every entrant exactly 1.0.
    """
    if places < 1:
        raise ValueError(f"places must be at least 1, got {places}")
    probability = np.asarray(probability, dtype=float)
    race = _factorise(race_ids, probability, "probability")
    entrants = np.bincount(race)
    target = np.minimum(places, entrants)
    z = logit(probability)
    # Bisect all races at once: the race's probability sum rises monotonically with its shift.
    # Races with entrants <= places cannot reach their target and end at the upper bound; they
    # are overwritten with 1.0 below.
    low = np.full(len(entrants), -_SHIFT_BOUND)
    high = np.full(len(entrants), _SHIFT_BOUND)
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        total = np.bincount(race, weights=expit(z + middle[race]), minlength=len(entrants))
        above = total > target
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    result = expit(z + (0.5 * (low + high))[race])
    result[entrants[race] <= places] = 1.0
    return result


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
    codes = _factorise(race_ids, scores, "scores")
    return _plackett_luce_layout(_race_layout(codes), scores, temperature, places)


def fit_temperature(
    race_ids: np.ndarray, scores: np.ndarray, actual: np.ndarray, places: int = PODIUM_PLACES
) -> float:
    """The Plackett-Luce temperature with the lowest mean log loss on the podium labels."""
    scores = np.asarray(scores, dtype=float)
    actual = np.asarray(actual, dtype=float)
    codes = _factorise(race_ids, scores, "scores")
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
