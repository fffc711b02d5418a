"""Post-processing is fitted only on earlier seasons, travels as JSON, and serves whole races."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from models_py.dataset import FeatureData, FeatureSpec
from models_py.evaluation import SeasonRunner, fit_and_score
from models_py.folds import window_before
from models_py.modelling import (
    LightGBMRanker,
    NaiveRuleModel,
    PodiumModel,
    finish_relevance,
    race_group_sizes,
)
from models_py.postprocessing import (
    RAW,
    PlackettLucePostProcessor,
    ProbabilityPostProcessor,
    fit_on_history,
    from_dict,
)

DRIVERS = 8
RACES_PER_SEASON = 12


def synthetic_data(first: int = 1995, last: int = 2010, seed: int = 3) -> FeatureData:
    """Races where a hidden skill decides the finishing order; `pace` is a noisy view of it."""
    generator = np.random.default_rng(seed)
    rows = []
    for year in range(first, last + 1):
        for round_ in range(1, RACES_PER_SEASON + 1):
            race_id = year * 100 + round_
            skill = generator.normal(size=DRIVERS)
            order = np.argsort(-(skill + generator.normal(scale=0.8, size=DRIVERS)))
            finish = np.empty(DRIVERS, dtype=int)
            finish[order] = np.arange(1, DRIVERS + 1)
            for driver in range(DRIVERS):
                rows.append(
                    {
                        "race_id": race_id,
                        "driver_id": driver,
                        "constructor_id": driver // 2,
                        "year": year,
                        "round": round_,
                        "is_upcoming": False,
                        "driver_name": f"driver {driver}",
                        "constructor_name": f"team {driver // 2}",
                        "podium": int(finish[driver] <= 3),
                        "finish_position": finish[driver],
                        "pace": skill[driver] + generator.normal(scale=0.3),
                    }
                )
    spec = FeatureSpec(
        features=("pace",),
        categorical=(),
        target="podium",
        column_types={},
        sql_sha256="synthetic",
        groups={"pace": "base"},
        ranking_label="finish_position",
    )
    return FeatureData(frame=pd.DataFrame(rows), spec=spec, categories={}, source="synthetic")


@dataclass
class PaceModel:
    """A model that needs no fitting: the logistic of the pace, so tests control the scores."""

    name: str = "pace"

    def fit(self, features, target, race_ids=None, finish_position=None) -> PaceModel:
        return self

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return 1 / (1 + np.exp(-(features["pace"].to_numpy() - 1.5)))

    def params(self) -> dict:
        return {}


@dataclass
class RecordingPostProcessor:
    """Records which seasons it was fitted on (race ids encode the season)."""

    seasons: set[int] = field(default_factory=set)
    needs_history: bool = True

    def fit(self, race_ids, scores, actual) -> RecordingPostProcessor:
        return RecordingPostProcessor(seasons={int(race) // 100 for race in race_ids})

    def apply(self, race_ids, scores) -> np.ndarray:
        return np.asarray(scores) * 0 + len(self.seasons) / 100

    def to_dict(self) -> dict:
        return {}

    def describe(self) -> str:
        return "recording"


def pace_model() -> PodiumModel:
    return PaceModel()


def test_each_fold_is_post_processed_by_a_fit_on_the_seasons_just_before_it() -> None:
    data = synthetic_data()
    runner = SeasonRunner(pace_model, RecordingPostProcessor, data, window=3, calibration_seasons=4)
    for season in (2006, 2010):
        result = runner.result(window_before(season, 3))
        assert result.postprocessor.seasons == set(range(season - 4, season))
        assert np.allclose(result.predictions["probability"], 0.04)
    # Seasons are scored once each, whatever number of folds reuse them as history.
    assert len(runner.scored) == len({*range(2002, 2007), *range(2006, 2011)})


def test_calibrated_and_normalised_folds_sum_to_three_per_race_and_keep_the_order() -> None:
    data = synthetic_data()
    runner = SeasonRunner(
        pace_model, ProbabilityPostProcessor, data, window=3, calibration_seasons=4
    )
    result = runner.result(window_before(2009, 3))
    predictions = result.predictions
    sums = predictions.groupby("race_id")["probability"].sum()
    assert np.allclose(sums, 3.0, atol=1e-9)
    assert (predictions["probability"] < 1).all() and (predictions["probability"] > 0).all()
    for _, race in predictions.groupby("race_id"):
        ranked_raw = race["raw"].rank(method="first").to_numpy()
        ranked = race["probability"].rank(method="first").to_numpy()
        assert (ranked_raw == ranked).all()
    # The logistic of pace - 1.5 is badly calibrated: calibration must move the Brier down.
    raw = fit_and_score(pace_model, data, window_before(2009, 3))
    assert result.metrics["brier"] < raw.metrics["brier"]
    assert result.metrics["race_mass_error"] < 1e-9 < raw.metrics["race_mass_error"]


def test_a_post_processor_that_needs_history_is_refused_without_it() -> None:
    data = synthetic_data()
    with pytest.raises(ValueError, match="needs a SeasonRunner"):
        fit_and_score(pace_model, data, window_before(2009, 3), ProbabilityPostProcessor())
    with pytest.raises(ValueError, match="earlier seasons"):
        fit_on_history(ProbabilityPostProcessor(), [])
    with pytest.raises(RuntimeError, match="fit the calibration"):
        ProbabilityPostProcessor().apply(np.array([1, 1]), np.array([0.2, 0.3]))
    with pytest.raises(RuntimeError, match="fit the temperature"):
        PlackettLucePostProcessor().apply(np.array([1, 1]), np.array([0.2, 0.3]))


def test_post_processors_round_trip_through_json_and_serve_alike() -> None:
    generator = np.random.default_rng(5)
    race_ids = np.repeat(np.arange(40), 10)
    raw = generator.random(400)
    actual = (generator.random(400) < raw * 0.5).astype(int)
    for postprocessor in (
        RAW,
        ProbabilityPostProcessor(calibrate=False, normalise=True),
        ProbabilityPostProcessor().fit(race_ids, raw, actual),
        PlackettLucePostProcessor().fit(race_ids, raw * 4, actual),
    ):
        restored = from_dict(postprocessor.to_dict())
        assert restored == postprocessor
        assert np.array_equal(restored.apply(race_ids, raw), postprocessor.apply(race_ids, raw))
    with pytest.raises(ValueError, match="unknown post-processing"):
        from_dict({"kind": "isotonic"})


def test_naive_rule_averages_team_and_driver_rates_with_the_base_rate_for_gaps() -> None:
    features = pd.DataFrame(
        {
            "constructor_podium_rate_5": [0.6, np.nan, 0.2],
            "driver_podium_rate_10": [0.2, 0.4, np.nan],
        }
    )
    model = NaiveRuleModel().fit(features, np.array([1, 0, 0, 0]))
    assert np.allclose(model.score(features), [0.4, 0.325, 0.225])


def test_ranker_learns_the_order_and_plackett_luce_turns_it_into_podium_odds() -> None:
    data = synthetic_data()
    runner = SeasonRunner(
        lambda: LightGBMRanker(
            categorical=[],
            seed=1,
            threads=1,
            hyperparameters={"n_estimators": 60, "learning_rate": 0.1, "min_child_samples": 20},
        ),
        PlackettLucePostProcessor,
        data,
        window=4,
        calibration_seasons=3,
    )
    result = runner.result(window_before(2010, 4))
    predictions = result.predictions
    assert np.allclose(predictions.groupby("race_id")["probability"].sum(), 3.0)
    assert result.postprocessor.temperature > 0
    # The ranker sees only `pace`: it should order the field about as well as pace itself.
    pace = fit_and_score(pace_model, data, window_before(2010, 4))
    assert result.metrics["auc"] > pace.metrics["auc"] - 0.03
    assert result.metrics["auc"] > 0.75


def test_ranking_labels_and_race_groups() -> None:
    assert list(finish_relevance(np.array([1, 2, 3, 10, 11, 20]), 10)) == [10, 9, 8, 1, 0, 0]
    assert list(race_group_sizes(np.array([7, 7, 7, 3, 3, 9]))) == [3, 2, 1]
    with pytest.raises(ValueError, match="contiguous"):
        race_group_sizes(np.array([7, 3, 7]))
