"""The one CV protocol and the metrics, on hand-made data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from models_py.evaluation import (
    CrossValidation,
    FoldDataError,
    metrics,
    race_mass_error,
    top3_hit_rate,
)
from models_py.folds import window_before
from models_py.models import Recipe, TrainingRows, podium_recipe
from models_py.probability import PostProcessing
from tests.synthetic import synthetic_table

PACE = Recipe("pace", "pace", ("pace",), calibrate=True, normalise=True)


@dataclass
class PaceModel:
    """Needs no fitting: the logistic of the pace, so tests control the scores."""

    name: str = "pace"

    def fit(self, rows: TrainingRows) -> PaceModel:
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        return 1 / (1 + np.exp(-(matrix["pace"].to_numpy() - 1.5)))

    def params(self) -> dict:
        return {}


def pace_factory(recipe, categorical, seed, threads) -> PaceModel:
    return PaceModel()


@dataclass
class RecordingPostProcessor:
    """Records which seasons it was fitted on (race ids encode the season)."""

    seasons: set[int] = field(default_factory=set)
    needs_history: bool = True

    def fit(self, race_ids, scores, actual, finish_position=None) -> RecordingPostProcessor:
        return RecordingPostProcessor(seasons={int(race) // 100 for race in race_ids})

    def apply(self, race_ids, scores) -> np.ndarray:
        return np.asarray(scores) * 0 + len(self.seasons) / 100

    def to_dict(self) -> dict:
        return {}

    def describe(self) -> str:
        return "recording"


def cross_validation(window: int = 3, calibration: int = 4, workers: int = 2) -> CrossValidation:
    return CrossValidation(synthetic_table(), ("pace", "team"), window, calibration, 1, workers)


def test_each_fold_is_post_processed_by_a_fit_on_the_seasons_just_before_it() -> None:
    cv = cross_validation()
    folds = [window_before(season, 3) for season in (2006, 2010)]
    seen = []
    results = cv.run(
        PACE,
        folds,
        on_result=seen.append,
        factory=pace_factory,
        postprocessor=RecordingPostProcessor(),
    )
    assert [result.fold for result in seen] == folds == [result.fold for result in results]
    for result in results:
        season = result.fold.valid_year
        assert result.postprocessor.seasons == set(range(season - 4, season))
        assert np.allclose(result.predictions["probability"], 0.04)
    # Seasons are scored once each, whatever number of folds reuse them as history.
    assert len(cv._rows) == len({*range(2002, 2007), *range(2006, 2011)})


def test_calibrated_and_normalised_folds_sum_to_three_per_race_and_keep_the_order() -> None:
    cv = cross_validation()
    [result] = cv.run(PACE, [window_before(2009, 3)], factory=pace_factory)
    predictions = result.predictions
    sums = predictions.groupby("race_id")["probability"].sum()
    assert np.allclose(sums, 3.0, atol=1e-9)
    assert (predictions["probability"] < 1).all() and (predictions["probability"] > 0).all()
    for _, race in predictions.groupby("race_id"):
        ranked_raw = race["raw"].rank(method="first").to_numpy()
        ranked = race["probability"].rank(method="first").to_numpy()
        assert (ranked_raw == ranked).all()
    # The logistic of pace - 1.5 is badly calibrated: calibration must move the Brier down.
    raw_recipe = Recipe("pace", "pace", ("pace",), calibrate=False, normalise=False)
    [raw] = cv.run(raw_recipe, [window_before(2009, 3)], factory=pace_factory)
    assert result.metrics["brier"] < raw.metrics["brier"]
    assert result.metrics["race_mass_error"] < 1e-9 < raw.metrics["race_mass_error"]


def test_folds_give_the_same_numbers_whatever_the_number_of_workers() -> None:
    recipe = podium_recipe(("pace", "team"), {"n_estimators": 30, "min_child_samples": 20})
    folds = [window_before(season, 3) for season in range(2005, 2011)]
    one = cross_validation(workers=1).run(recipe, folds)
    two = cross_validation(workers=2).run(recipe, folds)
    for first, second in zip(one, two, strict=True):
        assert first.metrics == second.metrics
        assert first.predictions["probability"].equals(second.predictions["probability"])


def test_a_fold_without_rows_or_podiums_is_an_error() -> None:
    cv = cross_validation()
    with pytest.raises(FoldDataError, match="no rows"):
        cv.run(PACE, [window_before(2020, 3)], factory=pace_factory)
    table = synthetic_table()
    frame = table.frame.assign(
        podium=np.where(table.frame["year"] == 2005, 0, table.frame["podium"])
    )
    cv = CrossValidation(table.with_frame(frame), ("pace",), 3, 0, 1)
    with pytest.raises(FoldDataError, match="validation seasons have no podium"):
        cv.run(
            PACE,
            [window_before(2005, 3)],
            factory=pace_factory,
            postprocessor=PostProcessing(False, True),
        )


def test_a_pruning_callback_stops_the_run_at_once() -> None:
    cv = cross_validation()
    seen = []

    class Stop(Exception):
        pass

    def stop_after_two(result) -> None:
        seen.append(result)
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        cv.run(
            PACE,
            [window_before(season, 3) for season in range(2003, 2011)],
            on_result=stop_after_two,
            factory=pace_factory,
        )
    assert len(seen) == 2


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


def test_metrics_match_hand_computed_brier_and_auc() -> None:
    race = np.array([1, 1, 1, 1])
    actual = np.array([1, 0, 1, 0])
    probability = np.array([0.8, 0.4, 0.6, 0.2])
    computed = metrics(race, actual, probability)
    assert computed["brier"] == pytest.approx((0.04 + 0.16 + 0.16 + 0.04) / 4)
    assert computed["auc"] == 1.0
    assert computed["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.6, 0.6, 0.8])))
    assert computed["race_mass_error"] == pytest.approx(1.0)


def test_metrics_refuse_a_single_class() -> None:
    with pytest.raises(ValueError, match="both"):
        metrics(np.array([1, 1]), np.array([0, 0]), np.array([0.1, 0.2]))
