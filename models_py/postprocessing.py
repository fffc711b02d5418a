"""What happens to a model's raw output before anyone reads it: the served half of the model.

A post-processor is fitted only on out-of-sample scores of seasons before the one it serves
(inside CV, the out-of-fold scores of the previous seasons; for the served model, those of the
last CV seasons), and then applied to a whole race at once. It is saved with the model as JSON,
so `predict`, the pyfunc model and the holdout metrics all run the very same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from models_py.probability import (
    PlattCalibration,
    fit_temperature,
    normalise_per_race,
    plackett_luce_by_race,
)


class PostProcessor(Protocol):
    @property
    def needs_history(self) -> bool:
        """True when it must be fitted on earlier seasons' scores before it can serve."""
        ...

    def fit(
        self, race_ids: np.ndarray, scores: np.ndarray, actual: np.ndarray
    ) -> PostProcessor: ...

    def apply(self, race_ids: np.ndarray, scores: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ProbabilityPostProcessor:
    """Optional Platt calibration of a probability, then optional per-race normalisation to 3."""

    calibrate: bool = True
    normalise: bool = True
    calibration: PlattCalibration | None = None

    @property
    def needs_history(self) -> bool:
        return self.calibrate

    def fit(
        self, race_ids: np.ndarray, scores: np.ndarray, actual: np.ndarray
    ) -> ProbabilityPostProcessor:
        if not self.calibrate:
            return self
        return ProbabilityPostProcessor(
            calibrate=True,
            normalise=self.normalise,
            calibration=PlattCalibration.fit(scores, actual),
        )

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
        return {
            "kind": "probability",
            "calibrate": self.calibrate,
            "normalise": self.normalise,
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }

    def describe(self) -> str:
        steps = []
        if self.calibrate:
            steps.append(
                "Platt calibration"
                + (
                    f" (slope {self.calibration.slope:.3f}, intercept "
                    f"{self.calibration.intercept:.3f})"
                    if self.calibration
                    else ""
                )
            )
        if self.normalise:
            steps.append("per-race normalisation to 3")
        return ", then ".join(steps) or "none"


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


RAW = ProbabilityPostProcessor(calibrate=False, normalise=False)


def from_dict(values: dict[str, Any]) -> PostProcessor:
    kind = values.get("kind")
    if kind == "probability":
        calibration = values.get("calibration")
        return ProbabilityPostProcessor(
            calibrate=bool(values["calibrate"]),
            normalise=bool(values["normalise"]),
            calibration=PlattCalibration.from_dict(calibration) if calibration else None,
        )
    if kind == "plackett_luce":
        return PlackettLucePostProcessor(values.get("temperature"))
    raise ValueError(f"unknown post-processing kind {kind!r}")


def fit_on_history(
    postprocessor: PostProcessor, history: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> PostProcessor:
    """Fit on earlier seasons' (race ids, raw scores, actual) taken together."""
    if not postprocessor.needs_history:
        return postprocessor
    if not history:
        raise ValueError("post-processing needs out-of-sample scores of earlier seasons")
    race_ids, scores, actual = (np.concatenate(parts) for parts in zip(*history, strict=True))
    return postprocessor.fit(race_ids, scores, actual)
