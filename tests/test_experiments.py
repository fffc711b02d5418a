"""Research: Plackett-Luce against brute force, and the ranking challenger on synthetic races."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from models_py.evaluation import CrossValidation
from models_py.experiments.ranking import (
    PlackettLucePostProcessor,
    finish_relevance,
    fit_temperature,
    make_ranker,
    race_group_sizes,
    ranker_recipe,
)
from models_py.folds import window_before
from models_py.models import podium_recipe
from models_py.plackett_luce import plackett_luce_by_race, plackett_luce_top_k
from models_py.probability import PODIUM_PLACES
from tests.conftest import REPO_ROOT
from tests.synthetic import synthetic_table


def shuffled_races(
    seed: int, races: int = 60, smallest: int = 5, largest: int = 26
) -> tuple[np.ndarray, np.ndarray]:
    """Race ids of random sizes, rows shuffled so races interleave, and a score per row."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(smallest, largest + 1, size=races)
    race_ids = np.repeat(np.arange(100, 100 + races), sizes)
    order = rng.permutation(len(race_ids))
    return race_ids[order], rng.normal(size=len(race_ids))[order]


def brute_force_top_k(scores: np.ndarray, temperature: float, places: int = 3) -> np.ndarray:
    """P(top `places`) by summing the probability of every complete finishing order."""
    strength = np.exp(scores / temperature)
    result = np.zeros(len(scores))
    for order in itertools.permutations(range(len(scores))):
        probability = 1.0
        for position, entrant in enumerate(order):
            probability *= strength[entrant] / strength[list(order[position:])].sum()
        result[list(order[:places])] += probability
    return result


@pytest.mark.parametrize("entrants", [5, 6])
def test_plackett_luce_matches_brute_force_enumeration(entrants: int) -> None:
    scores = np.random.default_rng(entrants).normal(size=entrants)
    result = plackett_luce_top_k(scores, temperature=0.7)
    np.testing.assert_allclose(result, brute_force_top_k(scores, 0.7), atol=1e-12)
    assert result.sum() == pytest.approx(3.0, abs=1e-12)


def test_plackett_luce_sums_to_three_and_ranks_by_score() -> None:
    scores = np.random.default_rng(5).normal(size=22)
    result = plackett_luce_top_k(scores, temperature=1.3)
    assert result.sum() == pytest.approx(3.0, abs=1e-12)
    assert (np.diff(result[np.argsort(scores)]) > 0).all()


def test_plackett_luce_equal_scores_and_hot_temperature_are_uniform() -> None:
    np.testing.assert_allclose(plackett_luce_top_k(np.zeros(8)), 3 / 8, atol=1e-12)
    scores = np.random.default_rng(6).normal(size=20)
    np.testing.assert_allclose(plackett_luce_top_k(scores, temperature=1e5), 3 / 20, atol=1e-4)


def test_plackett_luce_cold_temperature_is_the_score_ranking() -> None:
    # The rest of the field is e^-2500 weaker than the leader: a naive implementation divides
    # zero by zero here.
    scores = np.array([-200.0, 0.0, -50.0, -100.0, -150.0, -300.0])
    result = plackett_luce_top_k(scores, temperature=0.02)
    np.testing.assert_allclose(result, [0, 1, 1, 1, 0, 0], atol=1e-12)


def test_plackett_luce_small_races_are_certain() -> None:
    np.testing.assert_array_equal(plackett_luce_top_k(np.array([0.3, -1.0, 2.0])), 1.0)
    np.testing.assert_array_equal(plackett_luce_top_k(np.array([0.3, -1.0])), 1.0)


def test_plackett_luce_by_race_lines_up_with_shuffled_rows() -> None:
    race_ids, scores = shuffled_races(seed=7, races=40, smallest=2, largest=12)
    result = plackett_luce_by_race(race_ids, scores, temperature=0.8)
    for race in np.unique(race_ids):
        rows = race_ids == race
        expected = plackett_luce_top_k(scores[rows], temperature=0.8)
        np.testing.assert_allclose(result[rows], expected, atol=1e-12)


def test_fit_temperature_recovers_the_simulating_temperature() -> None:
    rng = np.random.default_rng(8)
    races, drivers, true_temperature = 2000, 20, 1.8
    scores = rng.normal(size=(races, drivers))
    # Gumbel-max trick: sorting score / T plus Gumbel noise samples a Plackett-Luce order.
    noisy = scores / true_temperature + rng.gumbel(size=(races, drivers))
    finishing_position = np.argsort(np.argsort(-noisy, axis=1), axis=1)
    actual = (finishing_position < PODIUM_PLACES).astype(int)
    race_ids = np.repeat(np.arange(races), drivers)
    fitted = fit_temperature(race_ids, scores.ravel(), actual.ravel())
    assert fitted == pytest.approx(true_temperature, rel=0.15)


def test_plackett_luce_post_processing_round_trips_and_needs_a_temperature() -> None:
    race_ids = np.repeat(np.arange(20), 8)
    scores = np.random.default_rng(1).normal(size=160)
    actual = np.zeros(160)
    actual[::8] = actual[1::8] = actual[2::8] = 1
    fitted = PlackettLucePostProcessor().fit(race_ids, scores, actual)
    assert fitted.to_dict() == {"kind": "plackett_luce", "temperature": fitted.temperature}
    with pytest.raises(RuntimeError, match="fit the temperature"):
        PlackettLucePostProcessor().apply(np.array([1, 1]), np.array([0.2, 0.3]))


def test_ranker_learns_the_order_and_plackett_luce_turns_it_into_podium_odds() -> None:
    cv = CrossValidation(synthetic_table(), ("pace",), 4, 3, 1)
    params = {"n_estimators": 60, "learning_rate": 0.1, "min_child_samples": 20}
    [result] = cv.run(
        ranker_recipe(("pace",), params),
        [window_before(2010, 4)],
        factory=make_ranker,
        postprocessor=PlackettLucePostProcessor(),
    )
    predictions = result.predictions
    assert np.allclose(predictions.groupby("race_id")["probability"].sum(), 3.0)
    assert result.postprocessor.temperature > 0
    # The ranker sees only `pace`: it should order the field about as well as a classifier.
    [classifier] = cv.run(podium_recipe(("pace",), params), [window_before(2010, 4)])
    assert result.metrics["auc"] > classifier.metrics["auc"] - 0.03
    assert result.metrics["auc"] > 0.75


def test_ranking_labels_and_race_groups() -> None:
    assert list(finish_relevance(np.array([1, 2, 3, 10, 11, 20]), 10)) == [10, 9, 8, 1, 0, 0]
    assert list(race_group_sizes(np.array([7, 7, 7, 3, 3, 9]))) == [3, 2, 1]
    with pytest.raises(ValueError, match="contiguous"):
        race_group_sizes(np.array([7, 3, 7]))


def test_the_default_path_imports_no_research() -> None:
    probe = (
        "import sys, models_py.cli, models_py.training, models_py.season, models_py.tuning; "
        "print(sorted(m for m in sys.modules if m.startswith('models_py.experiments')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"
