"""Calibration, per-race normalisation and Plackett-Luce on synthetic races with fixed seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models_py.probability import (
    PODIUM_PLACES,
    RAW,
    PlattCalibration,
    PostProcessing,
    fit_on_history,
    from_dict,
    logit,
    normalise_per_race,
)


def shuffled_races(
    seed: int, races: int = 60, smallest: int = 5, largest: int = 26
) -> tuple[np.ndarray, np.ndarray]:
    """Race ids of random sizes, rows shuffled so races interleave, and a score per row."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(smallest, largest + 1, size=races)
    race_ids = np.repeat(np.arange(100, 100 + races), sizes)
    order = rng.permutation(len(race_ids))
    return race_ids[order], rng.normal(size=len(race_ids))[order]


# normalise_per_race


def test_normalise_gives_every_race_three_podium_places_strictly_inside_0_1() -> None:
    race_ids, scores = shuffled_races(seed=1)
    probability = expit(scores - 1.5)
    result = normalise_per_race(race_ids, probability)
    sums = pd.Series(result).groupby(race_ids).sum()
    np.testing.assert_allclose(sums.to_numpy(), PODIUM_PLACES, atol=1e-9)
    assert ((result > 0) & (result < 1)).all()


def test_normalise_keeps_the_order_within_each_race() -> None:
    race_ids, scores = shuffled_races(seed=2)
    # Half the probabilities near 1, so multiplicative scaling would break the order or hit 1.
    probability = expit(np.clip(3 * scores + 2, -12, 12))
    result = normalise_per_race(race_ids, probability)
    for race in np.unique(race_ids):
        rows = race_ids == race
        by_input = np.argsort(probability[rows], kind="stable")
        assert (np.diff(result[rows][by_input]) >= 0).all()
    # Distinct inputs far from the clipping bounds stay distinct.
    assert len(np.unique(result)) == len(np.unique(probability))


def test_normalise_gives_small_races_certain_podiums() -> None:
    race_ids = np.array([7, 8, 7, 9, 9, 9, 9, 8, 9])
    probability = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.4, 0.0, 0.5])
    result = normalise_per_race(race_ids, probability)
    np.testing.assert_array_equal(result[race_ids != 9], 1.0)
    assert result[race_ids == 9].sum() == pytest.approx(3.0, abs=1e-9)
    assert (result[race_ids == 9] < 1).all()


def test_normalise_leaves_an_already_normalised_race_unchanged() -> None:
    probability = np.array([0.9, 0.7, 0.6, 0.4, 0.2, 0.15, 0.05])
    assert probability.sum() == pytest.approx(3.0)
    result = normalise_per_race(np.full(7, 3), probability)
    np.testing.assert_allclose(result, probability, atol=1e-9)


def test_normalise_names_the_race_with_a_nan() -> None:
    race_ids = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    probability = np.array([0.5, 0.4, 0.3, 0.2, 0.5, np.nan, 0.3, 0.2])
    with pytest.raises(ValueError, match=r"race\(s\) \[2\]"):
        normalise_per_race(race_ids, probability)


# PlattCalibration


def test_platt_recovers_a_known_slope_and_intercept() -> None:
    rng = np.random.default_rng(4)
    model_logit = rng.normal(-1.0, 1.5, size=50_000)
    actual = rng.random(50_000) < expit(0.7 * model_logit - 0.3)
    calibration = PlattCalibration.fit(expit(model_logit), actual.astype(int))
    assert calibration.slope == pytest.approx(0.7, abs=0.05)
    assert calibration.intercept == pytest.approx(-0.3, abs=0.05)


def test_platt_apply_is_increasing_and_matches_hand_values() -> None:
    probability = np.linspace(0.001, 0.999, 500)
    calibrated = PlattCalibration(slope=0.6, intercept=-1.2).apply(probability)
    assert (np.diff(calibrated) > 0).all()
    assert ((calibrated > 0) & (calibrated < 1)).all()
    # logit(0.5) = 0 and logit(expit(1)) = 1, so the outputs are expit(1) and expit(2 + 1).
    result = PlattCalibration(slope=2.0, intercept=1.0).apply(np.array([0.5, expit(1.0)]))
    np.testing.assert_allclose(result, expit(np.array([1.0, 3.0])), rtol=1e-9)


def test_post_processing_round_trips_through_json_and_serves_alike() -> None:
    generator = np.random.default_rng(5)
    race_ids = np.repeat(np.arange(40), 10)
    raw = generator.random(400)
    actual = (generator.random(400) < raw * 0.5).astype(int)
    for postprocessor in (
        RAW,
        PostProcessing(calibrate=False, normalise=True),
        PostProcessing().fit(race_ids, raw, actual),
    ):
        restored = from_dict(postprocessor.to_dict())
        assert restored == postprocessor
        assert np.array_equal(restored.apply(race_ids, raw), postprocessor.apply(race_ids, raw))
    with pytest.raises(ValueError, match="unknown post-processing"):
        from_dict({"kind": "isotonic"})


def test_post_processing_that_needs_history_is_refused_without_it() -> None:
    with pytest.raises(ValueError, match="earlier seasons"):
        fit_on_history(PostProcessing(), [])
    with pytest.raises(RuntimeError, match="fit the calibration"):
        PostProcessing().apply(np.array([1, 1]), np.array([0.2, 0.3]))


def test_platt_refuses_one_class_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="both podium"):
        PlattCalibration.fit(np.array([0.2, 0.4, 0.6]), np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="equally long"):
        PlattCalibration.fit(np.array([0.2, 0.4, 0.6]), np.array([0, 1]))


def test_logit_is_finite_at_0_and_1() -> None:
    values = logit(np.array([0.0, 0.5, 1.0]))
    assert np.isfinite(values).all()
    assert values[1] == 0.0
    assert values[0] == pytest.approx(-values[2])
