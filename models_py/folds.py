"""Rolling-window season folds: train on W consecutive seasons, validate on the next one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from models_py.settings import Protocol


class FoldError(ValueError):
    """The requested seasons cannot make valid folds; the message says why."""


@dataclass(frozen=True)
class Fold:
    train_years: tuple[int, ...]
    valid_year: int

    @property
    def name(self) -> str:
        return f"valid_{self.valid_year}"

    def describe(self) -> str:
        return f"train {self.train_years[0]}-{self.train_years[-1]} → valid {self.valid_year}"


def window_before(season: int, window: int) -> Fold:
    return Fold(train_years=tuple(range(season - window, season)), valid_year=season)


def rolling_folds(
    window: int,
    first_valid: int,
    last_valid: int,
    test_season: int,
    seasons_with_results: Iterable[int],
) -> list[Fold]:
    """One fold per validation season; the test season is never in any fold."""
    available = set(seasons_with_results)
    if window < 1:
        raise FoldError(f"the train window must be at least 1 season (got {window})")
    if first_valid > last_valid:
        raise FoldError(f"first CV season {first_valid} is after the last CV season {last_valid}")
    if last_valid >= test_season:
        raise FoldError(
            f"the last CV season {last_valid} must come before the test season {test_season}"
        )
    if test_season not in available:
        raise FoldError(f"test season {test_season} has no results in the feature table")
    earliest = first_valid - window
    if earliest < min(available):
        raise FoldError(
            f"a {window}-season window before {first_valid} starts in {earliest}, "
            f"but the data begins in {min(available)}"
        )
    needed = set(range(earliest, test_season + 1))
    missing = sorted(needed - available)
    if missing:
        raise FoldError(f"seasons without results in the feature table: {missing}")
    return [window_before(season, window) for season in range(first_valid, last_valid + 1)]


def protocol_folds(
    protocol: Protocol, seasons_with_results: Iterable[int]
) -> tuple[list[Fold], Fold]:
    """The CV folds and the holdout fold (W seasons before the test season) of a protocol."""
    folds = rolling_folds(
        protocol.window,
        protocol.first_cv_season,
        protocol.last_cv_season,
        protocol.test_season,
        seasons_with_results,
    )
    return folds, window_before(protocol.test_season, protocol.window)
