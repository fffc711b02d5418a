"""The podium model (LightGBM) and the baselines it must beat, behind one factory.

A `Recipe` is everything that decides a model's probabilities (kind, features, parameters,
post-processing): what the CV compares, the study tunes, the registry stores and the serving
refit repeats. Every model returns a raw score per row; turning scores into the probabilities
users read is `models_py.probability`'s job.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models_py.features import POST_QUALIFYING, PRE_QUALIFYING
from models_py.race_model import DEFAULT_RACE_MODEL_PARAMS, RACE_MODEL, ConditionalLogit

PODIUM_MODEL = "lgbm"
BLEND = "blend"
RULE_BASELINE = "baseline_rule"
NAIVE_BASELINE = "baseline_naive"
GRID_SLOT_BASELINE = "baseline_grid_slot"
RULE_FEATURE = "driver_podium_rate_10"
NAIVE_TEAM_FEATURE = "constructor_podium_rate_5"
GRID_SLOT_FEATURE = "qualifying_position"

# The podium model's defaults, taken from the region where the 50-trial study over the 24 CV
# folds found its best trials (about 1000 rounds at a learning rate near 0.004, ~30 leaves,
# ~240 rows per leaf, half the rows per tree), with the rounds cut to a quarter and the rate
# raised to match: the same CV Brier in a quarter of the time (docs/model.md). A podium is a
# rare, noisy outcome: strong regularisation is what buys Brier. LightGBM ignores `subsample`
# unless `subsample_freq` is set.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 250,
    "learning_rate": 0.016,
    "num_leaves": 31,
    "min_child_samples": 240,
    "subsample": 0.5,
    "subsample_freq": 2,
    "colsample_bytree": 0.8,
    "reg_alpha": 0.5,
    "reg_lambda": 0.3,
}

# 63 histogram bins instead of 255: a third faster per tree on these ~20k-row folds, with the
# same CV Brier to the fourth decimal. No pre-filtering, so one binned dataset serves every
# `min_child_samples` a study tries.
DATASET_PARAMS: dict[str, Any] = {"max_bin": 63, "feature_pre_filter": False, "verbosity": -1}

# Model inputs are float32 values on a 1e-4 grid: what the ONNX graph computes with.
FEATURE_DECIMALS = 4


@dataclass(frozen=True)
class Recipe:
    """A model kind, its features and parameters, and its post-processing."""

    name: str
    kind: str
    features: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    calibrate: bool = True
    normalise: bool = True
    moment: str = PRE_QUALIFYING
    # The race model's settings, for the kinds that include it (`race_model`, `blend`).
    race_model_params: Mapping[str, Any] = field(default_factory=dict)
    # For a `blend`: whether the served P(podium) blends in the race model (True) or is
    # LightGBM's alone (False; the race model then serves only P(win) and P(points)).
    blend: bool = True

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["features"] = list(self.features)
        values["params"] = dict(self.params)
        values["race_model_params"] = dict(self.race_model_params)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Recipe:
        return cls(**{**values, "features": tuple(values["features"])})


def model_matrix(
    frame: pd.DataFrame, features: tuple[str, ...] | list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The rows as every model sees them: floats, categorical columns as positions in a fixed
    category list (a value the list does not know becomes missing).

    Numeric values are put on a 1e-4 grid and into float32. ONNX runs trees in float32, split
    thresholds included; a threshold is the midpoint of two training values, and two values a
    hair apart (two windows' averages, 1e-16 apart) could fall on either side of it in float32.
    On the grid, neighbouring values are far apart at float32 precision.
    """
    columns = {}
    for name in features:
        if name in categories:
            codes = {value: float(code) for code, value in enumerate(categories[name])}
            columns[name] = frame[name].map(codes).to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = pd.to_numeric(frame[name], errors="raise").to_numpy(dtype="float64")
            columns[name] = np.round(values, FEATURE_DECIMALS).astype("float32").astype("float64")
    return pd.DataFrame(columns, index=frame.index)


@dataclass
class TrainingRows:
    """A model's training rows; the binned LightGBM dataset is built once per feature list."""

    matrix: pd.DataFrame
    target: np.ndarray
    race_ids: np.ndarray
    finish_position: np.ndarray | None = None
    _datasets: dict[tuple[str, ...], lgb.Dataset] = field(default_factory=dict, repr=False)

    def lgb_dataset(self, features: tuple[str, ...], categorical: list[str]) -> lgb.Dataset:
        with NATIVE_SETUP:
            if features not in self._datasets:
                self._datasets[features] = lgb.Dataset(
                    self.matrix[list(features)],
                    label=self.target,
                    categorical_feature=categorical or "auto",
                    params=DATASET_PARAMS,
                    free_raw_data=False,
                ).construct()
            return self._datasets[features]


class PodiumModel(Protocol):
    name: str

    def fit(self, rows: TrainingRows) -> PodiumModel: ...

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        """Raw output per row: a probability for the classifiers."""
        ...

    def params(self) -> dict[str, Any]: ...


def float32_thresholds(booster: lgb.Booster) -> lgb.Booster:
    """The same trees with every split threshold moved down to the nearest float32.

    ONNX rounds each float64 threshold to the *nearest* float32, which can land on a training
    value and flip `x <= t`. Rounding down instead changes nothing for float32 inputs (no float32
    lies between the two) and makes the threshold exact in ONNX, so the booster and the served
    ONNX graph agree on every split.
    """
    # `tree_sizes` gives each tree's byte length, which edited thresholds change: without it
    # LightGBM reads the trees one after another.
    lines = [
        line for line in booster.model_to_string().split("\n") if not line.startswith("tree_sizes=")
    ]
    for index, line in enumerate(lines):
        if not line.startswith("threshold=") or line == "threshold=":
            continue  # not a threshold line, or a tree that is a single leaf
        thresholds = np.array(line.removeprefix("threshold=").split(" "), dtype=np.float64)
        down = thresholds.astype(np.float32)
        above = down.astype(np.float64) > thresholds
        down[above] = np.nextafter(down[above], np.float32(-np.inf))
        lines[index] = "threshold=" + " ".join(repr(float(value)) for value in down)
    return lgb.Booster(model_str="\n".join(lines))


# Seasons are fitted in parallel threads (evaluation.CrossValidation). LightGBM documents no
# thread safety for several jobs in one process, and a CI run once crashed (SIGSEGV) there, so
# every step that builds native state takes turns: dataset construction, booster creation,
# loading a booster from text, prediction. The boosting rounds, nearly all of the time, still
# run in parallel, each on its own booster.
NATIVE_SETUP = threading.Lock()


def train_booster(native: Mapping[str, Any], dataset: lgb.Dataset, rounds: int) -> lgb.Booster:
    """`lgb.train` without callbacks, its set-up taking turns with other threads; returns the
    booster with float32-exact thresholds (`float32_thresholds`)."""
    with NATIVE_SETUP:
        booster = lgb.Booster(params={**native, "num_iterations": rounds}, train_set=dataset)
    for _ in range(rounds):
        booster.update()
    with NATIVE_SETUP:
        return float32_thresholds(booster)


def predict_booster(
    booster: lgb.Booster | None, matrix: pd.DataFrame, features: tuple[str, ...], threads: int
) -> np.ndarray:
    """The booster's raw output for the rows of `matrix` (its `features` columns)."""
    if booster is None:
        raise RuntimeError("fit the model before scoring")
    values = matrix[list(features)].to_numpy(dtype="float64")
    with NATIVE_SETUP:
        return np.asarray(booster.predict(values, num_threads=threads), dtype=float)


def lightgbm_params(
    hyperparameters: Mapping[str, Any], seed: int, threads: int, objective: str = "binary"
) -> tuple[dict[str, Any], int]:
    """LightGBM's native parameters for a deterministic model, and the number of rounds."""
    native = {key: value for key, value in hyperparameters.items() if key != "n_estimators"}
    native.update(
        objective=objective,
        seed=seed,
        deterministic=True,
        force_row_wise=True,
        num_threads=threads,
        verbosity=-1,
    )
    return native, int(hyperparameters.get("n_estimators", 100))


@dataclass
class LightGBMModel:
    """LightGBM binary classifier. No class weight by default: weighting the rare podiums up
    inflates every probability (the ablation measures it with `is_unbalance`)."""

    features: tuple[str, ...]
    categorical: list[str]
    hyperparameters: Mapping[str, Any]
    seed: int
    threads: int
    name: str = PODIUM_MODEL
    booster: lgb.Booster | None = None

    def fit(self, rows: TrainingRows) -> LightGBMModel:
        if rows.target.min() == rows.target.max():
            raise ValueError("a training fold needs both podium and non-podium rows")
        native, rounds = lightgbm_params(self.hyperparameters, self.seed, self.threads)
        dataset = rows.lgb_dataset(self.features, self.categorical)
        self.booster = train_booster(native, dataset, rounds)
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        return predict_booster(self.booster, matrix, self.features, self.threads)

    def params(self) -> dict[str, Any]:
        native, rounds = lightgbm_params(self.hyperparameters, self.seed, self.threads)
        return {**native, "num_boost_round": rounds, "categorical_feature": self.categorical}


@dataclass
class RuleModel:
    """Baseline: the driver's podium rate over the last 10 races, taken as the probability."""

    name: str = RULE_BASELINE
    fallback: float = 0.0

    def fit(self, rows: TrainingRows) -> RuleModel:
        # A debutant has no rate; the training base rate is the honest guess for them.
        self.fallback = float(np.mean(rows.target))
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        return matrix[RULE_FEATURE].fillna(self.fallback).to_numpy(dtype=float)

    def params(self) -> dict[str, Any]:
        return {"rule_feature": RULE_FEATURE, "missing_rate_fallback": "training base rate"}


@dataclass
class NaiveRuleModel:
    """Baseline: half the team's per-car podium rate over its last 5 races plus half the
    driver's over the last 10 (normalised per race by its post-processing)."""

    name: str = NAIVE_BASELINE
    fallback: float = 0.0

    def fit(self, rows: TrainingRows) -> NaiveRuleModel:
        self.fallback = float(np.mean(rows.target))
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        team = matrix[NAIVE_TEAM_FEATURE].fillna(self.fallback)
        driver = matrix[RULE_FEATURE].fillna(self.fallback)
        return (0.5 * team + 0.5 * driver).to_numpy(dtype=float)

    def params(self) -> dict[str, Any]:
        return {
            "rule": f"0.5 * {NAIVE_TEAM_FEATURE} + 0.5 * {RULE_FEATURE}",
            "missing_rate_fallback": "training base rate",
        }


@dataclass
class GridSlotModel:
    """Post-qualifying baseline: each qualifying position's podium rate over the training
    window (normalised per race by its post-processing). A position the window never saw
    takes the rate of the nearest one it did; no position, the training base rate."""

    name: str = GRID_SLOT_BASELINE
    rates: pd.Series | None = None
    fallback: float = 0.0

    def fit(self, rows: TrainingRows) -> GridSlotModel:
        slots = pd.DataFrame(
            {"slot": rows.matrix[GRID_SLOT_FEATURE].to_numpy(), "podium": rows.target}
        ).dropna()
        self.rates = slots.groupby("slot")["podium"].mean().sort_index()
        self.fallback = float(np.mean(rows.target))
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        if self.rates is None:
            raise RuntimeError("fit the model before scoring")
        slots = matrix[GRID_SLOT_FEATURE].to_numpy(dtype=float)
        known = self.rates.index.to_numpy(dtype=float)
        if known.size == 0:
            return np.full(len(slots), self.fallback)
        nearest = np.abs(slots[:, None] - known[None, :]).argmin(axis=1)
        rates = self.rates.to_numpy()[nearest]
        return np.where(np.isnan(slots), self.fallback, rates)

    def params(self) -> dict[str, Any]:
        return {"rule": f"podium rate of each {GRID_SLOT_FEATURE} over the training window"}


@dataclass
class LogisticModel:
    """Baseline: logistic regression on the same features (imputed, scaled, one-hot)."""

    features: tuple[str, ...]
    categorical: list[str]
    seed: int
    name: str = "baseline_logistic"
    pipeline: Pipeline | None = None

    def fit(self, rows: TrainingRows) -> LogisticModel:
        numeric = [name for name in self.features if name not in self.categorical]
        columns = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    numeric,
                ),
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    self.categorical,
                ),
            ]
        )
        self.pipeline = make_pipeline(
            columns, LogisticRegression(max_iter=2000, random_state=self.seed)
        )
        self.pipeline.fit(rows.matrix[list(self.features)], rows.target)
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("fit the model before scoring")
        return self.pipeline.predict_proba(matrix[list(self.features)])[:, 1]

    def params(self) -> dict[str, Any]:
        return {
            "imputation": "median (numeric), most frequent (categorical)",
            "scaling": "standard",
            "encoding": "one-hot",
            "max_iter": 2000,
            "C": 1.0,
        }


@dataclass
class BlendModel:
    """LightGBM and the race model fitted on the same rows. Its scores are two columns, LightGBM's
    P(podium) and the race model's score, which the blend's post-processing combines."""

    lightgbm: LightGBMModel
    race_model: ConditionalLogit
    name: str = BLEND

    def fit(self, rows: TrainingRows) -> BlendModel:
        self.lightgbm.fit(rows)
        self.race_model.fit(rows)
        return self

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        return np.column_stack([self.lightgbm.score(matrix), self.race_model.score(matrix)])

    @property
    def booster(self) -> lgb.Booster | None:
        return self.lightgbm.booster

    def params(self) -> dict[str, Any]:
        return {
            **self.lightgbm.params(),
            **{f"race_model.{key}": value for key, value in self.race_model.params().items()},
        }


def race_model_settings(recipe: Recipe) -> dict[str, Any]:
    return {**DEFAULT_RACE_MODEL_PARAMS, **recipe.race_model_params}


def make_model(recipe: Recipe, categorical: list[str], seed: int, threads: int) -> PodiumModel:
    """The one factory: a fresh, unfitted model of the recipe's kind."""
    if recipe.kind == "race_model":
        return ConditionalLogit(
            recipe.features, categorical, **race_model_settings(recipe), name=recipe.name
        )
    if recipe.kind == BLEND:
        return BlendModel(
            LightGBMModel(recipe.features, categorical, recipe.params, seed, threads),
            ConditionalLogit(recipe.features, categorical, **race_model_settings(recipe)),
            name=recipe.name,
        )
    if recipe.kind == "lightgbm":
        return LightGBMModel(
            recipe.features, categorical, recipe.params, seed, threads, name=recipe.name
        )
    if recipe.kind == "logistic":
        return LogisticModel(recipe.features, categorical, seed, name=recipe.name)
    if recipe.kind == "rule":
        return RuleModel(name=recipe.name)
    if recipe.kind == "naive":
        return NaiveRuleModel(name=recipe.name)
    if recipe.kind == "grid_slot":
        return GridSlotModel(name=recipe.name)
    raise ValueError(f"unknown model kind {recipe.kind!r}")


def podium_recipe(
    features: tuple[str, ...],
    params: Mapping[str, Any] | None = None,
    moment: str = PRE_QUALIFYING,
    calibrate: bool = True,
    normalise: bool = True,
) -> Recipe:
    return Recipe(
        name=PODIUM_MODEL,
        kind="lightgbm",
        features=features,
        params=dict(DEFAULT_LGBM_PARAMS if params is None else params),
        calibrate=calibrate,
        normalise=normalise,
        moment=moment,
    )


def blend_recipe(
    features: tuple[str, ...],
    params: Mapping[str, Any] | None = None,
    moment: str = PRE_QUALIFYING,
    blend: bool = True,
) -> Recipe:
    """LightGBM and the race model together: P(podium) blended (or LightGBM's alone, with
    `blend=False`), P(win) and P(points) from the race (`models_py.blend`)."""
    return Recipe(
        name=BLEND,
        kind=BLEND,
        features=features,
        params=dict(DEFAULT_LGBM_PARAMS if params is None else params),
        moment=moment,
        race_model_params=dict(DEFAULT_RACE_MODEL_PARAMS),
        blend=blend,
    )


def race_model_recipe(features: tuple[str, ...], moment: str = PRE_QUALIFYING) -> Recipe:
    """The race model alone: its P(top 3) by Plackett-Luce, normalised per race."""
    return Recipe(
        name=RACE_MODEL,
        kind="race_model",
        features=features,
        calibrate=False,
        normalise=True,
        moment=moment,
        race_model_params=dict(DEFAULT_RACE_MODEL_PARAMS),
    )


def baseline_recipes(features: tuple[str, ...], moment: str = PRE_QUALIFYING) -> list[Recipe]:
    """The cheap references the served model must beat at its moment."""
    if moment == POST_QUALIFYING:
        return [
            Recipe(
                GRID_SLOT_BASELINE,
                "grid_slot",
                (GRID_SLOT_FEATURE,),
                calibrate=False,
                normalise=True,
                moment=moment,
            )
        ]
    return [
        Recipe(RULE_BASELINE, "rule", (RULE_FEATURE,), calibrate=False, normalise=False),
        Recipe(
            NAIVE_BASELINE,
            "naive",
            (NAIVE_TEAM_FEATURE, RULE_FEATURE),
            calibrate=False,
            normalise=True,
        ),
        Recipe("baseline_logistic", "logistic", features, calibrate=False, normalise=False),
        Recipe(
            "baseline_lgbm_default",
            "lightgbm",
            features,
            params={},
            calibrate=False,
            normalise=False,
        ),
    ]


BASELINE_DESCRIPTIONS = {
    RULE_BASELINE: "driver_podium_rate_10 as the probability",
    NAIVE_BASELINE: "½ team podium rate (5 races) + ½ driver podium rate (10), normalised per race",
    "baseline_logistic": "logistic regression, imputed and scaled",
    "baseline_lgbm_default": "LightGBM, library default parameters",
    GRID_SLOT_BASELINE: "each qualifying position's podium rate, normalised per race",
}
