"""The race model: a conditional logit over each race's entrants.

Every car gets a linear score from the standardised features; the race is a Plackett-Luce draw
on those scores (`models_py.plackett_luce`): P(win) is a softmax over the field, P(top 3) the
exact enumeration of the first three places, P(points) the same model ten places deep. It is
fitted by maximum likelihood on the finishing order, the first `depth` places of every race in
the training window, with an L2 penalty on the coefficients. Weaker than LightGBM alone, it
sees each race as a whole, and a blend of the two beats either (docs/model.md).

Everything it needs to score a row lives in `LinearEncoding` and the coefficients: plain
numbers that travel with the served model as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:  # models.py builds race models: importing it here would go round in a circle
    from models_py.models import TrainingRows

RACE_MODEL = "race_model"
# Chosen on the 24 CV folds before qualifying (docs/model.md, "The race model"), over depths
# 1, 3, 6, 10, 20 and penalties 0.03 to 30: the likelihood of the first six places and a
# penalty of 1.0 (per race, on standardised inputs) gave the best blend. The whole order (20)
# makes the race model's own podium odds far worse (midfield order is mostly noise); depths
# 1-3 give the best P(win) on their own but a weaker blend.
DEFAULT_RACE_MODEL_PARAMS: dict[str, Any] = {"l2": 1.0, "depth": 6}


@dataclass(frozen=True)
class LinearEncoding:
    """Numeric columns standardised with the training window's mean and spread, a missing value
    set to the mean (0) beside a 0/1 indicator for every column the window saw missing;
    categorical codes one-hot over the codes the window saw (an unseen code: all zeros)."""

    numeric: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    indicators: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[float, ...]], ...]

    @classmethod
    def fit(cls, matrix: pd.DataFrame, categorical: list[str]) -> LinearEncoding:
        numeric = tuple(name for name in matrix.columns if name not in categorical)
        values = matrix[list(numeric)].to_numpy(dtype=float)
        seen = ~np.isnan(values)
        counts = seen.sum(axis=0)
        filled = np.where(seen, values, 0.0)
        means = np.divide(filled.sum(axis=0), counts, out=np.zeros(len(numeric)), where=counts > 0)
        spread = np.sqrt(
            np.divide(
                (np.where(seen, values - means, 0.0) ** 2).sum(axis=0),
                counts,
                out=np.zeros(len(numeric)),
                where=counts > 0,
            )
        )
        # A constant (or never seen) column carries nothing: scale 1 leaves it at 0.
        scales = np.where(spread > 1e-12, spread, 1.0)
        indicators = tuple(
            name for name, full in zip(numeric, seen.all(axis=0), strict=True) if not full
        )
        levels = tuple(
            (name, tuple(float(code) for code in np.unique(matrix[name].dropna())))
            for name in categorical
        )
        return cls(
            numeric,
            tuple(float(value) for value in means),
            tuple(float(value) for value in scales),
            indicators,
            levels,
        )

    @property
    def width(self) -> int:
        return (
            len(self.numeric)
            + len(self.indicators)
            + sum(len(codes) for _, codes in self.categorical)
        )

    def names(self) -> list[str]:
        return [
            *self.numeric,
            *(f"{name} is missing" for name in self.indicators),
            *(f"{name} = {code:g}" for name, codes in self.categorical for code in codes),
        ]

    def transform(self, matrix: pd.DataFrame) -> np.ndarray:
        values = matrix[list(self.numeric)].to_numpy(dtype=float)
        standard = (values - np.array(self.means)) / np.array(self.scales)
        parts = [np.nan_to_num(standard, nan=0.0)]
        if self.indicators:
            parts.append(matrix[list(self.indicators)].isna().to_numpy(dtype=float))
        for name, codes in self.categorical:
            column = matrix[name].to_numpy(dtype=float)
            parts.append((column[:, None] == np.array(codes)[None, :]).astype(float))
        return np.hstack(parts) if parts else np.empty((len(matrix), 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "means": list(self.means),
            "scales": list(self.scales),
            "indicators": list(self.indicators),
            "categorical": {name: list(codes) for name, codes in self.categorical},
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LinearEncoding:
        return cls(
            tuple(values["numeric"]),
            tuple(float(value) for value in values["means"]),
            tuple(float(value) for value in values["scales"]),
            tuple(values["indicators"]),
            tuple(
                (name, tuple(float(code) for code in codes))
                for name, codes in values["categorical"].items()
            ),
        )


@dataclass(frozen=True)
class RaceOrder:
    """The training races as a padded (races, entrants) layout, each race's rows sorted by
    finishing position (unknown positions last), for a vectorised Plackett-Luce likelihood."""

    rows: np.ndarray  # (races, width) row index into the training rows, -1 where padded
    counted: np.ndarray  # (races, width) True for the places the likelihood counts

    @classmethod
    def of(cls, race_ids: np.ndarray, finish_position: np.ndarray, depth: int) -> RaceOrder:
        frame = pd.DataFrame(
            {"race": pd.factorize(race_ids)[0], "finish": finish_position.astype(float)}
        )
        frame["row"] = np.arange(len(frame))
        frame = frame.sort_values(["race", "finish"], na_position="last", kind="stable")
        frame["place"] = frame.groupby("race").cumcount()
        entrants = frame.groupby("race").size().to_numpy()
        rows = np.full((len(entrants), entrants.max()), -1)
        rows[frame["race"].to_numpy(), frame["place"].to_numpy()] = frame["row"].to_numpy()
        finished = np.zeros(rows.shape, dtype=bool)
        finished[frame["race"].to_numpy(), frame["place"].to_numpy()] = frame["finish"].notna()
        # A place is counted if its finisher is known and someone is still left to beat.
        places = np.arange(rows.shape[1])[None, :]
        counted = finished & (places < depth) & (places < entrants[:, None] - 1)
        return cls(rows, counted)


def negative_log_likelihood(
    coefficients: np.ndarray, features: np.ndarray, order: RaceOrder, l2: float
) -> tuple[float, np.ndarray]:
    """Mean over races of -log P(the first places of the finishing order), plus the L2 penalty,
    and its gradient. Place k's chooser is the entrant in column k; its rivals are columns k.."""
    padded = order.rows >= 0
    score = np.where(padded, (features @ coefficients)[np.maximum(order.rows, 0)], -np.inf)
    best = score.max(axis=1, keepdims=True)
    strength = np.where(padded, np.exp(score - best), 0.0)
    remaining = np.cumsum(strength[:, ::-1], axis=1)[:, ::-1]  # strength of columns k..end
    counted = order.counted
    races = len(score)
    log_likelihood = np.where(counted, score - best - np.log(np.maximum(remaining, 1e-300)), 0.0)
    # d/d score_j: 1 if j chose a counted place, minus its share of every counted risk set it
    # was in (places 0..j).
    share = np.cumsum(np.where(counted, 1.0 / np.maximum(remaining, 1e-300), 0.0), axis=1)
    gradient_score = np.where(padded, counted - strength * share, 0.0)
    per_row = np.zeros(len(features))
    np.add.at(per_row, order.rows[padded], gradient_score[padded])
    loss = -log_likelihood.sum() / races + 0.5 * l2 * float(coefficients @ coefficients)
    gradient = -(features.T @ per_row) / races + l2 * coefficients
    return float(loss), gradient


@dataclass
class ConditionalLogit:
    """Linear scores, a Plackett-Luce race over them, fitted on finishing orders."""

    features: tuple[str, ...]
    categorical: list[str]
    l2: float = DEFAULT_RACE_MODEL_PARAMS["l2"]
    depth: int = DEFAULT_RACE_MODEL_PARAMS["depth"]
    name: str = RACE_MODEL
    encoding: LinearEncoding | None = None
    coefficients: np.ndarray | None = field(default=None, repr=False)

    def fit(self, rows: TrainingRows) -> ConditionalLogit:
        if rows.finish_position is None:
            raise ValueError("the race model learns finishing orders: it needs finish positions")
        if not self.l2 > 0 or self.depth < 1:
            raise ValueError(
                f"the race model needs l2 > 0 and depth >= 1, got {self.l2}, {self.depth}"
            )
        matrix = rows.matrix[list(self.features)]
        self.encoding = LinearEncoding.fit(matrix, self.categorical)
        features = self.encoding.transform(matrix)
        order = RaceOrder.of(rows.race_ids, rows.finish_position, self.depth)
        if not order.counted.any():
            raise ValueError("the race model found no finishing order to learn from")
        # Small matrices: BLAS threads cost more than they give, and folds already run side
        # by side (Protocol.workers).
        with threadpool_limits(1):
            fitted = minimize(
                negative_log_likelihood,
                np.zeros(features.shape[1]),
                args=(features, order, self.l2),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": 500},
            )
        self.coefficients = fitted.x
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        """Each row's race score (log-strength): only differences within a race matter."""
        if self.encoding is None or self.coefficients is None:
            raise RuntimeError("fit the race model before scoring")
        return self.encoding.transform(matrix) @ self.coefficients

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "depth": self.depth, "likelihood": "Plackett-Luce, first places"}

    def to_dict(self) -> dict[str, Any]:
        if self.encoding is None or self.coefficients is None:
            raise RuntimeError("fit the race model before saving it")
        return {
            "features": list(self.features),
            "l2": self.l2,
            "depth": self.depth,
            "encoding": self.encoding.to_dict(),
            "coefficients": [float(value) for value in self.coefficients],
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ConditionalLogit:
        encoding = LinearEncoding.from_dict(values["encoding"])
        return cls(
            tuple(values["features"]),
            [name for name, _ in encoding.categorical],
            float(values["l2"]),
            int(values["depth"]),
            encoding=encoding,
            coefficients=np.asarray(values["coefficients"], dtype=float),
        )
