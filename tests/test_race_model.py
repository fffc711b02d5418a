"""The race model (conditional logit), Plackett-Luce P(win)/P(top k), and the blend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from models_py.blend import BlendPostProcessing, derived_outcomes, postprocessor_from_dict
from models_py.evaluation import CrossValidation
from models_py.folds import window_before
from models_py.models import TrainingRows, blend_recipe, podium_recipe
from models_py.plackett_luce import plackett_luce_by_race, top_k_by_race, win_probability
from models_py.probability import PostProcessing
from models_py.race_model import (
    ConditionalLogit,
    LinearEncoding,
    RaceOrder,
    negative_log_likelihood,
)
from tests.synthetic import synthetic_table


def races(seed: int, count: int = 40, smallest: int = 4, largest: int = 24):
    """Race ids of random sizes (rows shuffled so races interleave) and a score per row."""
    generator = np.random.default_rng(seed)
    sizes = generator.integers(smallest, largest + 1, size=count)
    race_ids = np.repeat(np.arange(count), sizes)
    order = generator.permutation(len(race_ids))
    return race_ids[order], 2.0 * generator.normal(size=len(race_ids))[order], sizes


def test_top_k_by_integration_matches_exact_enumeration_and_sums_to_the_places() -> None:
    race_ids, scores, sizes = races(1)
    for places in (1, 2, 3):
        exact = plackett_luce_by_race(race_ids, scores, 1.0, places)
        np.testing.assert_allclose(top_k_by_race(race_ids, scores, places), exact, atol=1e-6)
    np.testing.assert_allclose(
        top_k_by_race(race_ids, scores, 1), win_probability(race_ids, scores), atol=1e-6
    )
    points = pd.Series(top_k_by_race(race_ids, scores, 10)).groupby(race_ids).sum()
    # A race with no more than ten cars gives each of them a certain top ten.
    np.testing.assert_allclose(points.to_numpy(), np.minimum(10, sizes), atol=1e-4)


def test_deeper_places_are_never_less_likely() -> None:
    race_ids, scores, _ = races(2)
    win = win_probability(race_ids, scores)
    podium = plackett_luce_by_race(race_ids, scores, 1.0, 3)
    points = top_k_by_race(race_ids, scores, 10)
    assert (win <= podium + 1e-9).all() and (podium <= points + 1e-6).all()


def test_win_probability_is_a_softmax_that_survives_huge_scores() -> None:
    race_ids = np.array([7, 7, 7, 9, 9])
    scores = np.array([1000.0, 999.0, 0.0, -5.0, -5.0])
    win = win_probability(race_ids, scores)
    np.testing.assert_allclose(win[:2], np.exp([0, -1]) / (1 + np.exp(-1)), atol=1e-12)
    np.testing.assert_allclose(win[3:], 0.5)


def test_likelihood_gradient_matches_finite_differences() -> None:
    generator = np.random.default_rng(3)
    race_ids = np.repeat(np.arange(30), 9)
    features = generator.normal(size=(len(race_ids), 4))
    finish = np.concatenate([generator.permutation(9) + 1 for _ in range(30)]).astype(float)
    finish[5] = np.nan  # a car without a finishing position is only ever a rival
    order = RaceOrder.of(race_ids, finish, depth=4)
    coefficients = generator.normal(size=4)
    error = check_grad(
        lambda w: negative_log_likelihood(w, features, order, 0.5)[0],
        lambda w: negative_log_likelihood(w, features, order, 0.5)[1],
        coefficients,
    )
    assert error < 1e-5


def simulated_races(coefficients: np.ndarray, count: int, seed: int):
    """Races drawn from a Plackett-Luce model with known coefficients (Gumbel trick)."""
    generator = np.random.default_rng(seed)
    sizes = generator.integers(8, 21, size=count)
    race_ids = np.repeat(np.arange(count), sizes)
    features = generator.normal(size=(len(race_ids), len(coefficients)))
    noisy = features @ coefficients + generator.gumbel(size=len(race_ids))
    finish = pd.Series(-noisy).groupby(race_ids).rank(method="first").to_numpy()
    return race_ids, features, finish


def test_the_race_model_recovers_the_coefficients_that_made_the_races() -> None:
    truth = np.array([1.2, -0.6, 0.0])
    race_ids, features, finish = simulated_races(truth, 1500, seed=4)
    matrix = pd.DataFrame(features, columns=["a", "b", "c"])
    # Standardised inputs: the model's coefficients are the truth times each column's spread.
    model = ConditionalLogit(("a", "b", "c"), [], l2=1e-4, depth=20).fit(
        TrainingRows(matrix, (finish <= 3).astype(int), race_ids, finish)
    )
    recovered = model.coefficients / np.array(model.encoding.scales)
    np.testing.assert_allclose(recovered, truth, atol=0.08)
    # A stronger penalty shrinks every coefficient towards zero.
    shrunk = ConditionalLogit(("a", "b", "c"), [], l2=20.0, depth=20).fit(
        TrainingRows(matrix, (finish <= 3).astype(int), race_ids, finish)
    )
    assert np.abs(shrunk.coefficients).sum() < 0.5 * np.abs(model.coefficients).sum()


def test_encoding_fills_missing_values_flags_them_and_ignores_unseen_categories() -> None:
    training = pd.DataFrame(
        {"pace": [1.0, 3.0, np.nan, 2.0], "flat": [5.0] * 4, "era": [0.0, 1.0, 1.0, 0.0]}
    )
    encoding = LinearEncoding.fit(training, ["era"])
    assert encoding.names() == ["pace", "flat", "pace is missing", "era = 0", "era = 1"]
    new = pd.DataFrame({"pace": [np.nan, 4.0], "flat": [5.0, 7.0], "era": [np.nan, 2.0]})
    encoded = encoding.transform(new)
    # missing pace: the training mean (0 once standardised) and the flag; a constant column
    # carries nothing; an era the training window never saw: no category at all
    np.testing.assert_allclose(encoded[0], [0.0, 0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(encoded[1], [(4.0 - 2.0) / np.sqrt(2 / 3), 2.0, 0.0, 0.0, 0.0])
    assert LinearEncoding.from_dict(encoding.to_dict()) == encoding


def test_a_saved_race_model_scores_exactly_as_the_fitted_one() -> None:
    race_ids, features, finish = simulated_races(np.array([0.8, 0.3]), 200, seed=5)
    matrix = pd.DataFrame(features, columns=["a", "b"]).assign(team=race_ids % 3 * 1.0)
    matrix.loc[::7, "a"] = np.nan
    model = ConditionalLogit(("a", "b", "team"), ["team"]).fit(
        TrainingRows(matrix, (finish <= 3).astype(int), race_ids, finish)
    )
    loaded = ConditionalLogit.from_dict(model.to_dict())
    np.testing.assert_array_equal(loaded.score(matrix), model.score(matrix))


def test_the_race_model_refuses_rows_without_finishing_order() -> None:
    matrix = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="finish positions"):
        ConditionalLogit(("a",), []).fit(TrainingRows(matrix, np.array([1, 0]), np.array([1, 1])))


def blend_history(seed: int = 6):
    """Two score columns of synthetic races: a LightGBM-like probability and a race score."""
    race_ids, features, finish = simulated_races(np.array([1.0]), 400, seed)
    skill = features[:, 0]
    noise = np.random.default_rng(seed).normal(scale=0.7, size=len(skill))
    lightgbm = 1 / (1 + np.exp(-(1.5 * skill - 2.0 + noise)))
    scores = np.column_stack([lightgbm, skill])
    return race_ids, scores, (finish <= 3).astype(int), finish


def test_blend_probabilities_sum_per_race_and_survive_json() -> None:
    race_ids, scores, actual, finish = blend_history()
    blend = BlendPostProcessing().fit(race_ids, scores, actual, finish)
    a, b, _ = blend.podium_weights
    assert a > 0 and b > 0  # both inputs carry signal about the podium
    forecast = blend.outcomes(race_ids, scores)
    sums = forecast.groupby(race_ids).sum()
    entrants = pd.Series(race_ids).value_counts().sort_index().to_numpy()
    np.testing.assert_allclose(sums["podium"], np.minimum(3, entrants), atol=1e-9)
    np.testing.assert_allclose(sums["win"], 1.0, atol=1e-12)
    np.testing.assert_allclose(sums["points"], np.minimum(10, entrants), atol=1e-4)
    loaded = postprocessor_from_dict(blend.to_dict())
    pd.testing.assert_frame_equal(loaded.outcomes(race_ids, scores), forecast)
    # P(win) fitted on the winners beats reading it off P(podium) on the same races.
    won = (finish == 1).astype(float)
    derived = derived_outcomes(race_ids, forecast["podium"].to_numpy())
    assert np.mean((forecast["win"] - won) ** 2) < np.mean((derived["win"] - won) ** 2)


def test_without_the_blend_p_podium_is_lightgbm_calibrated_and_normalised() -> None:
    race_ids, scores, actual, finish = blend_history()
    alone = BlendPostProcessing(blend=False).fit(race_ids, scores, actual, finish)
    platt = PostProcessing(calibrate=True, normalise=True).fit(race_ids, scores[:, 0], actual)
    np.testing.assert_allclose(
        alone.apply(race_ids, scores), platt.apply(race_ids, scores[:, 0]), atol=1e-9
    )
    with pytest.raises(ValueError, match="finishing positions"):
        BlendPostProcessing().fit(race_ids, scores, actual, None)


def test_the_blend_reuses_the_lightgbm_and_race_model_fits_of_the_runs_before_it() -> None:
    table = synthetic_table()
    cv = CrossValidation(table, ("pace", "team"), 4, 3, 1, 2)
    params = {"n_estimators": 20, "min_child_samples": 20}
    fold = window_before(2009, 4)
    [alone] = cv.run(podium_recipe(("pace", "team"), params), [fold])
    [blended] = cv.run(blend_recipe(("pace", "team"), params), [fold])
    assert blended.model.lightgbm is alone.model  # fitted once, shared
    np.testing.assert_array_equal(blended.predictions["raw"], alone.predictions["raw"])
    sums = blended.predictions.groupby("race_id")[["probability", "win_probability"]].sum()
    np.testing.assert_allclose(sums["probability"], 3.0, atol=1e-9)
    np.testing.assert_allclose(sums["win_probability"], 1.0, atol=1e-9)
    assert {"win_brier", "points_brier", "win_brier_from_podium"} <= set(blended.metrics)
