"""Metrics on hand-made data, including the two race-level ones."""

from __future__ import annotations

import numpy as np
import pytest

from models_py.metrics import evaluate, race_mass_error, top3_hit_rate


def test_top3_hit_rate_counts_the_three_most_likely_per_race() -> None:
    # Race 1: top three by p are rows 0, 1, 2 → podium 1, 1, 0 → 2/3.
    # Race 2: top three are rows 5, 6, 7 → all on the podium → 1.
    race = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2])
    actual = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0])
    probability = np.array([0.9, 0.8, 0.7, 0.1, 0.05, 0.6, 0.5, 0.4, 0.3])
    assert top3_hit_rate(race, actual, probability) == pytest.approx((2 / 3 + 1) / 2)


def test_race_mass_error_is_the_mean_distance_from_three_per_race() -> None:
    race = np.array([1, 1, 1, 2, 2])
    probability = np.array([1.0, 1.0, 1.0, 0.5, 0.5])  # sums 3 and 1
    assert race_mass_error(race, probability) == pytest.approx((0 + 2) / 2)


def test_evaluate_matches_hand_computed_brier_and_auc() -> None:
    race = np.array([1, 1, 1, 1])
    actual = np.array([1, 0, 1, 0])
    probability = np.array([0.8, 0.4, 0.6, 0.2])
    metrics = evaluate(race, actual, probability)
    assert metrics["brier"] == pytest.approx((0.04 + 0.16 + 0.16 + 0.04) / 4)
    assert metrics["auc"] == 1.0
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.6, 0.6, 0.8])))
    assert metrics["race_mass_error"] == pytest.approx(1.0)


def test_evaluate_refuses_a_single_class() -> None:
    with pytest.raises(ValueError, match="both"):
        evaluate(np.array([1, 1]), np.array([0, 0]), np.array([0.1, 0.2]))


def test_tracking_urls_lose_their_secrets_before_printing() -> None:
    from models_py.tracking import redact_url

    assert redact_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact_url("https://ana:pw@mlflow.example:443/") == "https://ana:***@mlflow.example:443/"
    assert "abc" not in redact_url("postgresql://db/optuna?password=abc")
