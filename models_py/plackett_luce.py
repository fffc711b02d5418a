"""Plackett-Luce race models: a finishing order drawn one place at a time, each unplaced entrant
taking the next place with probability proportional to its strength exp(score / temperature).

Given each entrant's score, this module turns a race into the probabilities users read:
P(win) (a softmax over the race), P(top 3) by exact enumeration of the first three places, and
P(top k) for deeper k (points: top 10) by numerical integration, where enumerating 20·19·…
orders is out of reach. Served by the race model (`models_py.race_model`) and used by the
research ranking challenger.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from scipy.special import expm1

from models_py.probability import PODIUM_PLACES, race_codes

POINTS_PLACES = 10
# Integration grid for P(top k): y = log(lambda_i * T_i), where T_i ~ Exp(lambda_i) is the
# entrant's "arrival time" in the exponential-race form of Plackett-Luce. y has the same
# standard Gumbel density for every entrant; [-16, 4] holds all but 1e-7 of its mass, and the
# integrand is smooth at unit scale: a trapezoid with steps of 0.25 matches the exact top-3
# enumeration to 1e-6 (tests/test_race_model.py), three times faster than steps of 0.083.
_QUADRATURE_NODES = np.linspace(-16.0, 4.0, 81)


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


def race_layout(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of every race, as one (races, entrants) array per distinct race size."""
    entrants = np.bincount(codes)
    rows_by_race = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(entrants)[:-1]])
    return [
        rows_by_race[starts[entrants == size][:, None] + np.arange(size)]
        for size in np.unique(entrants)
    ]


def plackett_luce_layout(
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
    return plackett_luce_layout(race_layout(codes), scores, temperature, places)


def win_probability(race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """P(first place) under Plackett-Luce at temperature 1: a softmax over each race."""
    scores = np.asarray(scores, dtype=float)
    codes = race_codes(race_ids, scores, "scores")
    best = np.full(codes.max() + 1 if len(codes) else 0, -np.inf)
    np.maximum.at(best, codes, scores)
    strength = np.exp(scores - best[codes])
    return strength / np.bincount(codes, weights=strength)[codes]


def _top_k_quadrature_races(scores: np.ndarray, places: int) -> np.ndarray:
    """P(top `places`) for (races, entrants) scores at temperature 1, by integrating over the
    entrant's arrival time the probability that fewer than `places` others arrived first."""
    races, entrants = scores.shape
    if entrants <= places:
        return np.ones(scores.shape)
    y = _QUADRATURE_NODES
    # (races, entrant i, node): P(another entrant j has arrived by i's arrival time), for each j
    # in turn; a Poisson-binomial count of arrivals kept up to places - 1.
    counts = np.zeros((races, entrants, len(y), places))
    counts[..., 0] = 1.0
    for other in range(entrants):
        ratio = scores[:, other, None] - scores  # (races, i): log(lambda_j / lambda_i)
        arrived = -expm1(-np.exp(np.clip(y[None, None, :] + ratio[..., None], None, 50.0)))
        arrived[:, other, :] = 0.0  # an entrant is not its own rival
        arrived = arrived[..., None]
        shifted = np.concatenate([np.zeros_like(counts[..., :1]), counts[..., :-1]], axis=-1)
        counts = counts * (1.0 - arrived) + shifted * arrived
    ahead = counts.sum(axis=-1)  # P(fewer than `places` rivals ahead | node)
    density = np.exp(y - np.exp(y))  # standard Gumbel (min) density of y
    return np.trapezoid(ahead * density, y, axis=-1)


def top_k_by_race(
    race_ids: np.ndarray, scores: np.ndarray, places: int = POINTS_PLACES
) -> np.ndarray:
    """P(finishing in the first `places`) for every entrant under Plackett-Luce at temperature
    1, for any depth: each race's values sum to min(places, entrants) to about 1e-6."""
    if places < 1:
        raise ValueError(f"places must be at least 1, got {places}")
    scores = np.asarray(scores, dtype=float)
    codes = race_codes(race_ids, scores, "scores")
    result = np.empty(len(scores))
    for rows in race_layout(codes):
        result[rows] = _top_k_quadrature_races(scores[rows], places)
    return np.clip(result, 0.0, 1.0)
