"""Probability metrics, including two race-level ones a podium forecaster owes its users."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

PODIUM_PLACES = 3
METRIC_NAMES = ("auc", "brier", "log_loss", "top3_hit_rate", "race_mass_error")


def top3_hit_rate(race_ids: np.ndarray, actual: np.ndarray, probability: np.ndarray) -> float:
    """Share of each race's three most likely drivers who finished on the podium, over races."""
    frame = pd.DataFrame({"race": race_ids, "actual": actual, "p": probability})
    # Ties in p are broken by row order, which is deterministic for a given frame.
    top = frame.sort_values(["race", "p"], ascending=[True, False], kind="stable")
    top = top.groupby("race", sort=False).head(PODIUM_PLACES)
    return float(top.groupby("race")["actual"].mean().mean())


def race_mass_error(race_ids: np.ndarray, probability: np.ndarray) -> float:
    """Mean over races of |sum of podium probabilities - 3|: a race has three podium places."""
    sums = pd.Series(probability).groupby(np.asarray(race_ids)).sum()
    return float((sums - PODIUM_PLACES).abs().mean())


def evaluate(race_ids: np.ndarray, actual: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    actual = np.asarray(actual, dtype=int)
    probability = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    if len(np.unique(actual)) < 2:
        raise ValueError("metrics need both podium and non-podium rows")
    return {
        "auc": float(roc_auc_score(actual, probability)),
        "brier": float(brier_score_loss(actual, probability)),
        "log_loss": float(log_loss(actual, np.clip(probability, 1e-15, 1 - 1e-15))),
        "top3_hit_rate": top3_hit_rate(np.asarray(race_ids), actual, probability),
        "race_mass_error": race_mass_error(np.asarray(race_ids), probability),
    }
