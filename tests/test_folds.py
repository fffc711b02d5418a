"""Rolling season folds: count, contiguity, no overlap, and the holdout never inside."""

from __future__ import annotations

import pytest

from models_py.folds import FoldError, rolling_folds, window_before

SEASONS = range(1950, 2026)


def test_default_protocol_gives_24_contiguous_folds() -> None:
    folds = rolling_folds(10, 2001, 2024, 2025, SEASONS)
    assert len(folds) == 24
    assert folds[0].train_years == tuple(range(1991, 2001))
    assert folds[-1].train_years == tuple(range(2014, 2024))
    for fold in folds:
        assert len(fold.train_years) == 10
        assert list(fold.train_years) == list(range(fold.train_years[0], fold.train_years[-1] + 1))
        assert fold.valid_year == fold.train_years[-1] + 1
        assert fold.valid_year not in fold.train_years
    assert [fold.valid_year for fold in folds] == list(range(2001, 2025))


def test_holdout_season_is_never_in_any_fold() -> None:
    folds = rolling_folds(5, 2010, 2024, 2025, SEASONS)
    assert all(2025 not in fold.train_years and fold.valid_year != 2025 for fold in folds)
    holdout = window_before(2025, 5)
    assert holdout.train_years == (2020, 2021, 2022, 2023, 2024)
    assert holdout.valid_year == 2025


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, 2010, 2005, 2025), "after the last CV season"),
        ((10, 2001, 2025, 2025), "must come before the test season"),
        ((80, 2001, 2024, 2025), "the data begins in 1950"),
        ((10, 2001, 2024, 2030), "test season 2030 has no results"),
        ((0, 2001, 2024, 2025), "at least 1 season"),
    ],
)
def test_impossible_season_ranges_are_clear_errors(args: tuple, message: str) -> None:
    with pytest.raises(FoldError, match=message):
        rolling_folds(*args, SEASONS)


def test_a_gap_in_the_seasons_is_an_error() -> None:
    seasons = [year for year in SEASONS if year != 2010]
    with pytest.raises(FoldError, match=r"\[2010\]"):
        rolling_folds(10, 2001, 2024, 2025, seasons)
