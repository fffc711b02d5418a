"""Race-level probabilities from LightGBM and the race model: the served post-processing.

`BlendPostProcessing` takes the two columns a `BlendModel` scores (LightGBM's P(podium), the
race model's score) and gives, for every entrant of a race:

- **P(podium)**: sigmoid(a·logit(LightGBM) + b·logit(race model's Plackett-Luce P(top 3)) + c),
  a Platt calibration on two inputs fitted on earlier seasons' out-of-fold scores, then the
  per-race normalisation to 3. Without the blend (`blend=False`) b is 0: LightGBM's Platt
  calibration alone.
- **P(win)**: a softmax over the race of a'·logit(P(podium)) + b'·(race model's score), fitted
  by maximum likelihood on the same seasons' winners: sums to 1 per race.
- **P(points)**: the race model's Plackett-Luce P(top 10): sums to 10 (or to the field, if
  smaller).

Like every post-processor it is fitted on seasons before the one it serves and travels with
the served model as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models_py.models import BLEND, Recipe
from models_py.plackett_luce import (
    POINTS_PLACES,
    plackett_luce_by_race,
    top_k_by_race,
    win_probability,
)
from models_py.probability import (
    PODIUM_PLACES,
    PlattCalibration,
    PostProcessing,
    PostProcessor,
    logit,
    normalise_per_race,
)
from models_py.probability import from_dict as probability_from_dict
from models_py.race_model import RaceOrder, negative_log_likelihood

OUTCOMES = ("podium", "win", "points")
# The win softmax has two coefficients fitted on thousands of races: a token penalty only keeps
# them finite should one input separate the winners perfectly.
_WIN_L2 = 1e-6


def race_model_podium(race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The race model's own P(top 3): exact Plackett-Luce at temperature 1."""
    return plackett_luce_by_race(np.asarray(race_ids), np.asarray(scores, dtype=float), 1.0)


def derived_outcomes(race_ids: np.ndarray, podium: np.ndarray) -> pd.DataFrame:
    """P(win) and P(points) read off P(podium) alone, the reference the race model must beat:
    each race's podium probabilities scaled to sum to 1, and logit-shifted to sum to 10."""
    race_ids = np.asarray(race_ids)
    podium = np.asarray(podium, dtype=float)
    total = pd.Series(podium).groupby(race_ids).transform("sum").to_numpy()
    return pd.DataFrame(
        {
            "podium": podium,
            "win": podium / total,
            "points": normalise_per_race(race_ids, podium, POINTS_PLACES),
        }
    )


def _two_columns(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != 2:
        raise ValueError(
            "the blend needs two score columns (LightGBM's P(podium), the race model's score), "
            f"got shape {scores.shape}"
        )
    return np.clip(scores[:, 0], 0.0, 1.0), scores[:, 1]


@dataclass(frozen=True)
class BlendPostProcessing:
    """(LightGBM's P(podium), race model score) of whole races → P(podium), P(win), P(points)."""

    blend: bool = True
    podium_weights: tuple[float, float, float] | None = None  # a, b, c
    win_weights: tuple[float, float] | None = None  # a', b'

    @property
    def needs_history(self) -> bool:
        return True

    def fit(
        self,
        race_ids: np.ndarray,
        scores: np.ndarray,
        actual: np.ndarray,
        finish_position: np.ndarray | None = None,
    ) -> BlendPostProcessing:
        if finish_position is None:
            raise ValueError("P(win) is fitted on finishing positions: the history has none")
        race_ids = np.asarray(race_ids)
        lightgbm, race_score = _two_columns(scores)
        actual = np.asarray(actual).astype(int)
        if self.blend:
            inputs = np.column_stack(
                [logit(lightgbm), logit(race_model_podium(race_ids, race_score))]
            )
            # As in Platt calibration, a huge C makes the fit plain maximum likelihood.
            stack = LogisticRegression(C=1e6, max_iter=1000).fit(inputs, actual)
            a, b = (float(value) for value in stack.coef_[0])
            podium_weights = (a, b, float(stack.intercept_[0]))
        else:
            platt = PlattCalibration.fit(lightgbm, actual)
            podium_weights = (platt.slope, 0.0, platt.intercept)
        fitted = BlendPostProcessing(self.blend, podium_weights, None)
        podium = fitted.apply(race_ids, scores)
        order = RaceOrder.of(race_ids, np.asarray(finish_position, dtype=float), depth=1)
        solution = minimize(
            negative_log_likelihood,
            np.zeros(2),
            args=(np.column_stack([logit(podium), race_score]), order, _WIN_L2),
            jac=True,
            method="L-BFGS-B",
        )
        return BlendPostProcessing(
            self.blend, podium_weights, (float(solution.x[0]), float(solution.x[1]))
        )

    def apply(self, race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """P(podium), each race summing to 3."""
        if self.podium_weights is None:
            raise RuntimeError("fit the blend on earlier seasons before applying it")
        race_ids = np.asarray(race_ids)
        lightgbm, race_score = _two_columns(scores)
        a, b, c = self.podium_weights
        combined = a * logit(lightgbm) + c
        if b != 0.0:
            combined = combined + b * logit(race_model_podium(race_ids, race_score))
        return normalise_per_race(race_ids, expit(combined), PODIUM_PLACES)

    def outcomes(self, race_ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        """P(podium), P(win) and P(points) of every row."""
        if self.win_weights is None:
            raise RuntimeError("fit the blend on earlier seasons before applying it")
        race_ids = np.asarray(race_ids)
        podium = self.apply(race_ids, scores)
        _, race_score = _two_columns(scores)
        a, b = self.win_weights
        return pd.DataFrame(
            {
                "podium": podium,
                "win": win_probability(race_ids, a * logit(podium) + b * race_score),
                "points": top_k_by_race(race_ids, race_score, POINTS_PLACES),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": BLEND,
            "blend": self.blend,
            "podium_weights": list(self.podium_weights) if self.podium_weights else None,
            "win_weights": list(self.win_weights) if self.win_weights else None,
        }

    def describe(self) -> str:
        if self.podium_weights is None:
            podium = "blend of LightGBM and the race model" if self.blend else "LightGBM"
            return f"{podium}, normalised per race; P(win) softmax; P(points) Plackett-Luce"
        a, b, c = self.podium_weights
        podium = (
            f"P(podium) = sigmoid({a:.3f}·logit(LightGBM) + {b:.3f}·logit(race model top 3) "
            f"{c:+.3f})"
            if self.blend
            else f"P(podium) = Platt(LightGBM) (slope {a:.3f}, intercept {c:.3f})"
        )
        win = ""
        if self.win_weights is not None:
            win_a, win_b = self.win_weights
            win = f"; P(win) = softmax({win_a:.3f}·logit(P(podium)) + {win_b:.3f}·race score)"
        return f"{podium}, normalised per race to 3{win}; P(points) = race model top 10"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BlendPostProcessing:
        podium, win = values.get("podium_weights"), values.get("win_weights")
        return cls(
            bool(values["blend"]),
            tuple(float(value) for value in podium) if podium else None,  # type: ignore[arg-type]
            tuple(float(value) for value in win) if win else None,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class RaceModelPostProcessing:
    """The race model alone: its Plackett-Luce P(top 3), P(win) and P(top 10); nothing fitted."""

    @property
    def needs_history(self) -> bool:
        return False

    def fit(
        self,
        race_ids: np.ndarray,
        scores: np.ndarray,
        actual: np.ndarray,
        finish_position: np.ndarray | None = None,
    ) -> RaceModelPostProcessing:
        return self

    def apply(self, race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return race_model_podium(race_ids, scores)

    def outcomes(self, race_ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        race_ids = np.asarray(race_ids)
        return pd.DataFrame(
            {
                "podium": self.apply(race_ids, scores),
                "win": win_probability(race_ids, scores),
                "points": top_k_by_race(race_ids, scores, POINTS_PLACES),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "race_model"}

    def describe(self) -> str:
        return "Plackett-Luce at temperature 1: P(top 3), P(win), P(top 10)"


def outcomes(
    postprocessor: PostProcessor, race_ids: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """P(podium), P(win), P(points) of every row: the post-processor's own where it has them,
    else read off its P(podium) (`derived_outcomes`)."""
    own = getattr(postprocessor, "outcomes", None)
    if own is not None:
        return own(race_ids, scores)
    return derived_outcomes(race_ids, postprocessor.apply(race_ids, scores))


def postprocessor_for(recipe: Recipe) -> PostProcessor:
    """A recipe's unfitted post-processing."""
    if recipe.kind == BLEND:
        return BlendPostProcessing(blend=recipe.blend)
    if recipe.kind == "race_model":
        return RaceModelPostProcessing()
    return PostProcessing(recipe.calibrate, recipe.normalise)


def postprocessor_from_dict(values: dict[str, Any]) -> PostProcessor:
    """A served model's post-processing, from its JSON."""
    kind = values.get("kind")
    if kind == BLEND:
        return BlendPostProcessing.from_dict(values)
    if kind == "race_model":
        return RaceModelPostProcessing()
    return probability_from_dict(values)
