"""The one evaluation protocol, and the metrics a podium forecaster owes its users.

Every season is scored by a model fitted on the `window` seasons before it. A fold's
post-processing is fitted on the raw out-of-sample scores of the `calibration_seasons` seasons
before it, each scored by a model that never saw it: the recipe the served model follows.
Training, the holdout, the study and the ablation all call `CrossValidation.run`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from models_py.blend import derived_outcomes, outcomes, postprocessor_for
from models_py.features import FeatureTable
from models_py.folds import Fold, window_before
from models_py.models import (
    BLEND,
    BlendModel,
    PodiumModel,
    Recipe,
    TrainingRows,
    make_model,
    model_matrix,
)
from models_py.plackett_luce import POINTS_PLACES
from models_py.probability import PODIUM_PLACES, PostProcessor, fit_on_history

METRIC_NAMES = (
    "auc",
    "brier",
    "log_loss",
    "top3_hit_rate",
    "race_mass_error",
    "win_brier",
    "win_brier_from_podium",
    "points_brier",
    "points_brier_from_podium",
)
PREDICTION_COLUMNS = ["race_id", "driver_id", "year", "round", "driver_name", "constructor_name"]
# A model's raw output: one score per row, or two for a blend (LightGBM's, the race model's).
SCORE_COLUMNS = ("raw", "raw_race_model")
# Seasons scored by a model (fitted model and scores), kept for the recipes run after it: the
# blend reuses the LightGBM and race-model fits of the runs before it, and the serving refit
# the CV's seasons. Bounded, so a long study does not keep every trial's models.
SEASON_CACHE_SIZE = 160
# Each fold's model runs on one thread; folds run side by side (Protocol.workers), so every
# figure is the same whatever the number of workers.
MODEL_THREADS = 1


ModelFactory = Callable[[Recipe, list[str], int, int], PodiumModel]


class FoldDataError(ValueError):
    """A fold has no rows or no podiums: an error, never a silent skip."""


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


def metrics(race_ids: np.ndarray, actual: np.ndarray, probability: np.ndarray) -> dict[str, float]:
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


def outcome_metrics(
    race_ids: np.ndarray, finish_position: np.ndarray, forecast: pd.DataFrame
) -> dict[str, float]:
    """Brier of P(win) and P(points), and of the same read off P(podium) alone (the reference:
    `blend.derived_outcomes`)."""
    finish = np.asarray(finish_position, dtype=float)
    derived = derived_outcomes(race_ids, forecast["podium"].to_numpy())
    result = {}
    for outcome, places in (("win", 1), ("points", POINTS_PLACES)):
        actual = (finish <= places).astype(float)
        result[f"{outcome}_brier"] = float(np.mean((forecast[outcome].to_numpy() - actual) ** 2))
        result[f"{outcome}_brier_from_podium"] = float(
            np.mean((derived[outcome].to_numpy() - actual) ** 2)
        )
    return result


def score_columns(scores: np.ndarray) -> dict[str, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        return {"raw": scores}
    return dict(zip(SCORE_COLUMNS, scores.T, strict=True))


def scores_of(rows: pd.DataFrame) -> np.ndarray:
    """The raw scores kept in a frame's score columns (`score_columns`), as the model gave them."""
    if SCORE_COLUMNS[1] in rows:
        return rows[list(SCORE_COLUMNS)].to_numpy(dtype=float)
    return rows["raw"].to_numpy(dtype=float)


def fitted_model_key(recipe: Recipe, factory: Callable) -> tuple:
    """What decides a fitted model: two recipes with the same key fit the same model on a fold
    (the name and the post-processing do not enter)."""
    race_model = recipe.kind in ("race_model", BLEND)
    decisive = {
        "kind": recipe.kind,
        "features": list(recipe.features),
        "params": dict(recipe.params) if recipe.kind != "race_model" else {},
        "race_model_params": dict(recipe.race_model_params) if race_model else {},
    }
    return (factory, json.dumps(decisive, sort_keys=True, default=str))


@dataclass(frozen=True)
class SeasonScores:
    """A model fitted on a fold's training seasons and its raw scores on the fold's season."""

    fold: Fold
    model: PodiumModel
    rows: pd.DataFrame  # PREDICTION_COLUMNS, actual, raw
    train_rows: int
    seconds: float

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        rows = self.rows
        finish = (
            rows["finish_position"].to_numpy(dtype=float) if "finish_position" in rows else None
        )
        return rows["race_id"].to_numpy(), scores_of(rows), rows["actual"].to_numpy(), finish


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    model: PodiumModel
    metrics: dict[str, float]
    predictions: pd.DataFrame  # PREDICTION_COLUMNS, actual, raw..., probability, win, points
    train_rows: int
    seconds: float
    postprocessor: PostProcessor


class CrossValidation:
    """Season scoring and post-processing over one feature table, with every fold's training
    rows (and LightGBM's binned dataset) built once and reused by every recipe run on it."""

    def __init__(
        self,
        table: FeatureTable,
        features: tuple[str, ...],
        window: int,
        calibration_seasons: int,
        seed: int,
        workers: int = 2,
        threads: int = MODEL_THREADS,
    ) -> None:
        self.table = table
        self.threads = threads
        self.features = features
        self.window = window
        self.calibration_seasons = calibration_seasons
        self.seed = seed
        self.workers = max(1, workers)
        self.categories = table.categories(features)
        self.categorical = list(self.categories)
        past = table.past
        self.past = past
        self.matrix = model_matrix(past, features, self.categories)
        self.target = table.spec.target
        self._rows: dict[Fold, tuple[TrainingRows, pd.DataFrame, pd.DataFrame]] = {}
        self._seasons: OrderedDict[tuple, SeasonScores] = OrderedDict()
        self._seasons_lock = threading.Lock()

    def fold_rows(self, fold: Fold) -> tuple[TrainingRows, pd.DataFrame, pd.DataFrame]:
        """Training rows, validation matrix and validation rows of a fold (built once)."""
        if fold not in self._rows:
            years = self.past["year"]
            train = years.isin(fold.train_years).to_numpy()
            valid = (years == fold.valid_year).to_numpy()
            for label, mask in (("training", train), ("validation", valid)):
                if not mask.any():
                    raise FoldDataError(f"{fold.describe()}: the {label} seasons have no rows")
                if self.past.loc[mask, self.target].sum() == 0:
                    raise FoldDataError(f"{fold.describe()}: the {label} seasons have no podium")
            training = self.past[train]
            label = self.table.spec.ranking_label
            rows = TrainingRows(
                matrix=self.matrix[train],
                target=training[self.target].to_numpy(dtype=int),
                race_ids=training["race_id"].to_numpy(),
                finish_position=training[label].to_numpy() if label else None,
            )
            validation = self.past[valid]
            info = validation[PREDICTION_COLUMNS].assign(
                actual=validation[self.target].to_numpy(dtype=int)
            )
            if label:
                info = info.assign(finish_position=validation[label].to_numpy(dtype=float))
            self._rows[fold] = (rows, self.matrix[valid], info.reset_index(drop=True))
        return self._rows[fold]

    def forget_fits(self) -> None:
        """Drop the fitted seasons kept for later recipes (a benchmark times fits afresh)."""
        with self._seasons_lock:
            self._seasons.clear()

    def score_season(self, make: Callable[[], PodiumModel], fold: Fold) -> SeasonScores:
        started = time.perf_counter()
        rows, valid_matrix, info = self.fold_rows(fold)
        model = make().fit(rows)
        scored = info.assign(**score_columns(model.score(valid_matrix)))
        return SeasonScores(fold, model, scored, len(rows.target), time.perf_counter() - started)

    def season(self, recipe: Recipe, factory: ModelFactory, fold: Fold) -> SeasonScores:
        """A recipe's model fitted on `fold`'s training seasons and scored on its season, fitted
        once for every recipe with the same `fitted_model_key`. A blend is assembled from the
        seasons of its two parts."""
        if recipe.kind == BLEND and factory is make_model:
            lightgbm = self.season(replace(recipe, kind="lightgbm"), factory, fold)
            race = self.season(replace(recipe, kind="race_model"), factory, fold)
            model = BlendModel(lightgbm.model, race.model, name=recipe.name)  # type: ignore[arg-type]
            rows = lightgbm.rows.assign(raw_race_model=race.rows["raw"].to_numpy())
            seconds = lightgbm.seconds + race.seconds
            return SeasonScores(fold, model, rows, lightgbm.train_rows, seconds)
        key = (*fitted_model_key(recipe, factory), fold)
        with self._seasons_lock:
            if key in self._seasons:
                self._seasons.move_to_end(key)
                return self._seasons[key]
        categorical = [name for name in recipe.features if name in self.categories]
        scored = self.score_season(
            lambda: factory(recipe, categorical, self.seed, self.threads), fold
        )
        with self._seasons_lock:
            self._seasons[key] = scored
            while len(self._seasons) > SEASON_CACHE_SIZE:
                self._seasons.popitem(last=False)
        return scored

    def run(
        self,
        recipe: Recipe,
        folds: list[Fold],
        on_result: Callable[[FoldResult], None] | None = None,
        factory: ModelFactory = make_model,
        postprocessor: PostProcessor | None = None,
    ) -> list[FoldResult]:
        """Every fold in calendar order, post-processed as the served model would be.

        Seasons are fitted `workers` at a time. `on_result` sees each fold as soon as it and the
        seasons its post-processing needs are scored (a study reports it to its pruner, which
        may stop the run by raising). Research models bring their own `factory` and
        `postprocessor`; by default they are the recipe's.
        """
        postprocessor = postprocessor or postprocessor_for(recipe)
        history = self.calibration_seasons if postprocessor.needs_history else 0
        needed = sorted(
            {
                season
                for fold in folds
                for season in range(fold.valid_year - history, fold.valid_year + 1)
            }
        )
        wanted = {fold.valid_year: fold for fold in folds}
        scores: dict[int, SeasonScores] = {}
        results: list[FoldResult] = []
        with ThreadPoolExecutor(self.workers) as pool:
            for start in range(0, len(needed), self.workers):
                batch = needed[start : start + self.workers]
                seasons = [
                    wanted.get(season) or window_before(season, self.window) for season in batch
                ]
                for season, scored in zip(
                    batch,
                    pool.map(lambda fold: self.season(recipe, factory, fold), seasons),
                    strict=True,
                ):
                    scores[season] = scored
                for season in batch:
                    if season not in wanted:
                        continue
                    earlier = [scores[year].history() for year in range(season - history, season)]
                    result = finish(scores[season], fit_on_history(postprocessor, earlier))
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
        return results


@dataclass(frozen=True)
class ServingFit:
    """A model fitted for serving a season, and the post-processing it serves with."""

    model: PodiumModel
    postprocessor: PostProcessor
    train_rows: int
    trained_through: str


class ServingRefit:
    """The served model of a season, refitted as races are run: trained on the `window`
    seasons before it plus the season's races already run, post-processed by a fit on the
    out-of-fold scores of the `calibration_seasons` seasons before it (as every CV fold is).

    Before the season's first race it is exactly the CV protocol's model for that season (the
    holdout model, when the season is the test season)."""

    def __init__(
        self,
        cv: CrossValidation,
        recipe: Recipe,
        season: int,
        factory: ModelFactory = make_model,
        postprocessor: PostProcessor | None = None,
    ) -> None:
        self.cv = cv
        self.recipe = recipe
        self.season = season
        self.factory = factory
        categorical = [name for name in recipe.features if name in cv.categories]
        self.make = lambda: factory(recipe, categorical, cv.seed, cv.threads)
        self.unfitted = postprocessor or postprocessor_for(recipe)
        self._postprocessor: PostProcessor | None = None

    def postprocessor(self) -> PostProcessor:
        """Fitted once per season, on the seasons before it."""
        if self._postprocessor is None:
            history = self.cv.calibration_seasons if self.unfitted.needs_history else 0
            seasons = [
                window_before(year, self.cv.window)
                for year in range(self.season - history, self.season)
            ]
            with ThreadPoolExecutor(self.cv.workers) as pool:
                scored = list(
                    pool.map(lambda fold: self.cv.season(self.recipe, self.factory, fold), seasons)
                )
            self._postprocessor = fit_on_history(self.unfitted, [item.history() for item in scored])
        return self._postprocessor

    def mask(self, before_round: int | None) -> np.ndarray:
        """The past rows it trains on: the window before the season, and the season's races
        before `before_round` (None: every race of the season with results)."""
        past = self.cv.past
        years = past["year"].to_numpy()
        window = (years >= self.season - self.cv.window) & (years < self.season)
        current = years == self.season
        if before_round is not None:
            current &= past["round"].to_numpy() < before_round
        return window | current

    def trained_through(self, before_round: int | None) -> str:
        past = self.cv.past[self.mask(before_round)]
        current = past[past["year"] == self.season]
        first = self.season - self.cv.window
        suffix = f" and {self.season} rounds 1-{current['round'].max()}" if len(current) else ""
        return f"{first}-{self.season - 1}{suffix}"

    def fit(self, before_round: int | None = None) -> ServingFit:
        mask = self.mask(before_round)
        past = self.cv.past
        label = self.cv.table.spec.ranking_label
        rows = TrainingRows(
            matrix=self.cv.matrix[mask],
            target=past.loc[mask, self.cv.target].to_numpy(dtype=int),
            race_ids=past.loc[mask, "race_id"].to_numpy(),
            finish_position=past.loc[mask, label].to_numpy() if label else None,
        )
        if rows.target.sum() == 0:
            raise FoldDataError(f"no podiums to train on for season {self.season}")
        model = self.make().fit(rows)
        return ServingFit(
            model, self.postprocessor(), len(rows.target), self.trained_through(before_round)
        )


def finish(scores: SeasonScores, postprocessor: PostProcessor) -> FoldResult:
    started = time.perf_counter()
    rows = scores.rows
    race_ids = rows["race_id"].to_numpy()
    forecast = outcomes(postprocessor, race_ids, scores_of(rows))
    probability = forecast["podium"].to_numpy()
    measured = metrics(race_ids, rows["actual"].to_numpy(), probability)
    if "finish_position" in rows:
        measured |= outcome_metrics(race_ids, rows["finish_position"].to_numpy(), forecast)
    return FoldResult(
        fold=scores.fold,
        model=scores.model,
        metrics=measured,
        predictions=rows.assign(
            probability=probability,
            win_probability=forecast["win"].to_numpy(),
            points_probability=forecast["points"].to_numpy(),
        ),
        train_rows=scores.train_rows,
        seconds=scores.seconds + time.perf_counter() - started,
        postprocessor=postprocessor,
    )


def summarize(results: list[FoldResult]) -> dict[str, float]:
    """Mean and standard deviation of each metric over folds."""
    table = pd.DataFrame([result.metrics for result in results])
    summary: dict[str, float] = {}
    for name in table.columns:
        summary[f"cv_{name}_mean"] = float(table[name].mean())
        summary[f"cv_{name}_std"] = float(table[name].std(ddof=0))
    return summary


def fold_table(results: list[FoldResult]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "valid_season": result.fold.valid_year,
                "train_first": result.fold.train_years[0],
                "train_last": result.fold.train_years[-1],
                "train_rows": result.train_rows,
                "valid_rows": len(result.predictions),
                **result.metrics,
                "seconds": round(result.seconds, 3),
            }
            for result in results
        ]
    )


def pooled_predictions(results: list[FoldResult]) -> pd.DataFrame:
    return pd.concat([result.predictions for result in results], ignore_index=True)


def folds_better(
    results: list[FoldResult], reference: list[FoldResult], metric: str = "brier"
) -> int:
    """How many folds have a lower `metric` than the same fold of `reference`."""
    theirs = {result.fold.valid_year: result.metrics[metric] for result in reference}
    return sum(
        1
        for result in results
        if result.fold.valid_year in theirs
        and result.metrics[metric] < theirs[result.fold.valid_year]
    )
