"""Turn model scores into the podium probabilities users read: the served half of a model.

- `PlattCalibration` reshapes probabilities so that "30 %" happens about 30 % of the time.
- `normalise_per_race` makes each race's probabilities add up to the three podium places.

A post-processor is fitted only on out-of-sample scores of seasons before the one it serves
(inside CV, the out-of-fold scores of the previous seasons; for the served model, those of the
seasons before its own), then applied to whole races. It travels with the model as JSON, so the
served model, `predict` and the holdout metrics all run the very same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

PODIUM_PLACES = 3

# The bisection bracket for the per-race logit shift. Logits are clipped to about ±13.8, so a
# shift of ±40 pushes every entrant to within 1e-11 of 0 or 1: the root always lies inside.
_SHIFT_BOUND = 40.0
_BISECTION_STEPS = 100


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


def race_codes(race_ids: np.ndarray, values: np.ndarray, name: str) -> np.ndarray:
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
    race = race_codes(race_ids, probability, "probability")
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


class PostProcessor(Protocol):
    """Raw scores of whole races → probabilities; fitted on earlier seasons' scores if needed."""

    @property
    def needs_history(self) -> bool: ...

    def fit(
        self,
        race_ids: np.ndarray,
        scores: np.ndarray,
        actual: np.ndarray,
        finish_position: np.ndarray | None = None,
    ) -> PostProcessor: ...

    def apply(self, race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class PostProcessing:
    """Optional Platt calibration of a probability, then optional per-race normalisation to 3."""

    calibrate: bool = True
    normalise: bool = True
    calibration: PlattCalibration | None = None

    @property
    def needs_history(self) -> bool:
        return self.calibrate

    def fit(
        self,
        race_ids: np.ndarray,
        scores: np.ndarray,
        actual: np.ndarray,
        finish_position: np.ndarray | None = None,
    ) -> PostProcessing:
        if not self.calibrate:
            return self
        return PostProcessing(True, self.normalise, PlattCalibration.fit(scores, actual))

    def apply(self, race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        probability = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
        if self.calibrate:
            if self.calibration is None:
                raise RuntimeError("fit the calibration on earlier seasons before applying it")
            probability = self.calibration.apply(probability)
        if self.normalise:
            probability = normalise_per_race(np.asarray(race_ids), probability)
        return probability

    def to_dict(self) -> dict[str, Any]:
        calibration = self.calibration
        return {
            "kind": "probability",
            "calibrate": self.calibrate,
            "normalise": self.normalise,
            "calibration": (
                {"slope": calibration.slope, "intercept": calibration.intercept}
                if calibration
                else None
            ),
        }

    def describe(self) -> str:
        steps = []
        if self.calibrate:
            fitted = self.calibration
            steps.append(
                "Platt calibration"
                + (
                    f" (slope {fitted.slope:.3f}, intercept {fitted.intercept:.3f})"
                    if fitted
                    else ""
                )
            )
        if self.normalise:
            steps.append("per-race normalisation to 3")
        return ", then ".join(steps) or "none"


RAW = PostProcessing(calibrate=False, normalise=False)


def from_dict(values: dict[str, Any]) -> PostProcessing:
    if values.get("kind") != "probability":
        raise ValueError(f"unknown post-processing kind {values.get('kind')!r}")
    calibration = values.get("calibration")
    return PostProcessing(
        calibrate=bool(values["calibrate"]),
        normalise=bool(values["normalise"]),
        calibration=(
            PlattCalibration(float(calibration["slope"]), float(calibration["intercept"]))
            if calibration
            else None
        ),
    )


def fit_on_history(
    postprocessor: PostProcessor,
    history: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
) -> PostProcessor:
    """Fit on earlier seasons' (race ids, raw scores, actual, finish positions) taken together."""
    if not postprocessor.needs_history:
        return postprocessor
    if not history:
        raise ValueError("post-processing needs out-of-sample scores of earlier seasons")
    race_ids, scores, actual = (
        np.concatenate(parts) for parts in list(zip(*history, strict=True))[:3]
    )
    finishes = [season[3] for season in history]
    finish_position = None if any(f is None for f in finishes) else np.concatenate(finishes)
    return postprocessor.fit(race_ids, scores, actual, finish_position)
