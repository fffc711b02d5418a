"""The podium model (LightGBM), its ranking challenger and the baselines, behind one interface.

Every model returns a raw score per row (`score`); turning scores into the probabilities users
read is the post-processor's job (`models_py.postprocessing`), fitted on earlier seasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

RULE_FEATURE = "driver_podium_rate_10"
NAIVE_TEAM_FEATURE = "constructor_podium_rate_5"
NAIVE_DRIVER_FEATURE = "driver_podium_rate_10"

# The podium model's defaults: slow learning, small trees that need many rows per leaf, L1/L2
# and row and column bagging (LightGBM ignores `subsample` unless `subsample_freq` is set). A
# podium is a rare, noisy outcome: on the CV folds strong regularisation is what buys Brier.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 600,
    "learning_rate": 0.006,
    "num_leaves": 15,
    "min_child_samples": 300,
    "subsample": 0.7,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_alpha": 1.0,
    "reg_lambda": 5.0,
}


# 63 histogram bins instead of 255: a third faster per tree on these ~20k-row folds, with the
# same CV Brier to the fourth decimal (measured on every fourth fold with the tuned settings).
DATASET_PARAMS: dict[str, Any] = {"max_bin": 63, "verbosity": -1}


class PodiumModel(Protocol):
    name: str

    def fit(
        self,
        features: pd.DataFrame,
        target: np.ndarray,
        race_ids: np.ndarray | None = None,
        finish_position: np.ndarray | None = None,
    ) -> PodiumModel: ...

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """Raw output: a probability for the classifiers, a ranking score for the ranker."""
        ...

    def params(self) -> dict[str, Any]: ...


def float32_thresholds(booster: lgb.Booster) -> lgb.Booster:
    """The same trees with every split threshold moved down to the nearest float32.

    ONNX evaluates trees in float32, rounding each float64 threshold to the *nearest* float32,
    which can land on a training value and flip `x <= t`. Rounding down instead changes nothing
    for float32 inputs (no float32 lies between the two), and makes the threshold exact in ONNX:
    booster and ONNX twin then agree on every split. Features are float32 by construction
    (`dataset.quantise`), so predictions are unchanged.
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


def split_scale_pos_weight(params: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """Booster parameters without `scale_pos_weight`, and that weight (None when absent)."""
    rest = dict(params)
    weight = rest.pop("scale_pos_weight", None)
    return rest, weight


def lightgbm_training_params(
    params: dict[str, Any],
    seed: int,
    threads: int,
    scale_pos_weight: float | None,
    objective: str = "binary",
) -> tuple[dict[str, Any], int]:
    """LightGBM's native parameters for a deterministic model, and the number of rounds."""
    native = {key: value for key, value in params.items() if key != "n_estimators"}
    if scale_pos_weight is not None:
        native["scale_pos_weight"] = scale_pos_weight
    native.update(
        objective=objective,
        seed=seed,
        deterministic=True,
        force_row_wise=True,
        num_threads=threads,
        verbosity=-1,
    )
    return native, int(params.get("n_estimators", 100))


@dataclass
class LightGBMModel:
    """LightGBM binary classifier. No class weight by default: weighting the rare podiums up
    inflates every probability. `scale_pos_weight=None` weighs them negatives / positives."""

    categorical: list[str]
    seed: int
    threads: int
    hyperparameters: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_LGBM_PARAMS))
    scale_pos_weight: float | None = 1.0
    name: str = "lgbm"
    booster: lgb.Booster | None = None
    fitted_scale_pos_weight: float | None = None

    def fit(
        self,
        features: pd.DataFrame,
        target: np.ndarray,
        race_ids: np.ndarray | None = None,
        finish_position: np.ndarray | None = None,
    ) -> LightGBMModel:
        positives = int(np.sum(target))
        negatives = len(target) - positives
        if positives == 0 or negatives == 0:
            raise ValueError("a training fold needs both podium and non-podium rows")
        self.fitted_scale_pos_weight = (
            self.scale_pos_weight if self.scale_pos_weight is not None else negatives / positives
        )
        native, rounds = lightgbm_training_params(
            self.hyperparameters, self.seed, self.threads, self.fitted_scale_pos_weight
        )
        dataset = lgb.Dataset(
            features,
            label=target,
            categorical_feature=self.categorical or "auto",
            params=DATASET_PARAMS,
            free_raw_data=False,
        )
        self.booster = float32_thresholds(lgb.train(native, dataset, num_boost_round=rounds))
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("fit the model before predicting")
        return np.asarray(self.booster.predict(features), dtype=float)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(features)

    def params(self) -> dict[str, Any]:
        native, rounds = lightgbm_training_params(
            self.hyperparameters,
            self.seed,
            self.threads,
            self.fitted_scale_pos_weight
            if self.fitted_scale_pos_weight is not None
            else (self.scale_pos_weight or float("nan")),
        )
        return {**native, "num_boost_round": rounds, "categorical_feature": self.categorical}


@dataclass
class RuleModel:
    """Baseline: the driver's podium rate over the last 10 races, taken as the probability."""

    name: str = "baseline_rule"
    fallback: float | None = None

    def fit(
        self,
        features: pd.DataFrame,
        target: np.ndarray,
        race_ids: np.ndarray | None = None,
        finish_position: np.ndarray | None = None,
    ) -> RuleModel:
        # A debutant has no rate; the training base rate is the honest guess for them.
        self.fallback = float(np.mean(target))
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return features[RULE_FEATURE].fillna(self.fallback).to_numpy(dtype=float)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(features)

    def params(self) -> dict[str, Any]:
        return {"rule_feature": RULE_FEATURE, "missing_rate_fallback": "training base rate"}


@dataclass
class LogisticModel:
    """Baseline: logistic regression on the same features (imputed, scaled, one-hot)."""

    numeric: list[str]
    categorical: list[str]
    seed: int
    name: str = "baseline_logistic"
    pipeline: Pipeline | None = None

    def fit(
        self,
        features: pd.DataFrame,
        target: np.ndarray,
        race_ids: np.ndarray | None = None,
        finish_position: np.ndarray | None = None,
    ) -> LogisticModel:
        columns = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    self.numeric,
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
        self.pipeline.fit(features, target)
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("fit the model before predicting")
        return self.pipeline.predict_proba(features)[:, 1]

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(features)

    def params(self) -> dict[str, Any]:
        return {
            "imputation": "median (numeric), most frequent (categorical)",
            "scaling": "standard",
            "encoding": "one-hot",
            "max_iter": 2000,
            "C": 1.0,
        }


@dataclass
class NaiveRuleModel:
    """Baseline: half the team's per-car podium rate over its last 5 races plus half the
    driver's over the last 10 (normalised per race by its post-processor)."""

    name: str = "baseline_naive"
    fallback: float | None = None

    def fit(
        self,
        features: pd.DataFrame,
        target: np.ndarray,
        race_ids: np.ndarray | None = None,
        finish_position: np.ndarray | None = None,
    ) -> NaiveRuleModel:
        self.fallback = float(np.mean(target))
        return self

    def score(self, features: pd.DataFrame) -> np.ndarray:
        team = features[NAIVE_TEAM_FEATURE].fillna(self.fallback)
        driver = features[NAIVE_DRIVER_FEATURE].fillna(self.fallback)
        return (0.5 * team + 0.5 * driver).to_numpy(dtype=float)

    def params(self) -> dict[str, Any]:
        return {
            "rule": f"0.5 * {NAIVE_TEAM_FEATURE} + 0.5 * {NAIVE_DRIVER_FEATURE}",
            "missing_rate_fallback": "training base rate",
        }


def race_group_sizes(race_ids: np.ndarray) -> np.ndarray:
    """Row counts of consecutive races; LightGBM's ranking objectives need each race contiguous."""
    race_ids = np.asarray(race_ids)
    starts = np.flatnonzero(np.r_[True, race_ids[1:] != race_ids[:-1]])
    if len(np.unique(race_ids)) != len(starts):
        raise ValueError("the rows of each race must be contiguous to train a ranking model")
    return np.diff(np.r_[starts, len(race_ids)])


def finish_relevance(finish_position: np.ndarray, relevant_places: int) -> np.ndarray:
    """Graded relevance for the ranker: the winner `relevant_places`, then one less per place,
    0 from `relevant_places + 1` on, so the model learns the order at the front of the field."""
    return np.clip(relevant_places + 1 - np.asarray(finish_position, dtype=float), 0, None).astype(
        int
    )


@dataclass
class LightGBMRanker:
    """The race-coherent challenger: LightGBM lambdarank over each race's finishing order. Its
    scores only order a race's entrants; Plackett-Luce turns them into P(top 3)."""

    categorical: list[str]
    seed: int
    threads: int
    hyperparameters: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_LGBM_PARAMS))
    relevant_places: int = 10
    name: str = "lgbm_ranker"
    booster: lgb.Booster | None = None

    def fit(
        self,
        features: pd.DataFrame,
        target: np.ndarray,
        race_ids: np.ndarray | None = None,
        finish_position: np.ndarray | None = None,
    ) -> LightGBMRanker:
        if race_ids is None or finish_position is None:
            raise ValueError("the ranker trains on race ids and finishing positions")
        native, rounds = self.native_params()
        dataset = lgb.Dataset(
            features,
            label=finish_relevance(finish_position, self.relevant_places),
            group=race_group_sizes(race_ids),
            categorical_feature=self.categorical or "auto",
            params=DATASET_PARAMS,
            free_raw_data=False,
        )
        self.booster = float32_thresholds(lgb.train(native, dataset, num_boost_round=rounds))
        return self

    def native_params(self) -> tuple[dict[str, Any], int]:
        native, rounds = lightgbm_training_params(
            self.hyperparameters, self.seed, self.threads, None, objective="lambdarank"
        )
        # Linear gains: LightGBM's default 2^label - 1 would make the race almost only about
        # the winner, while a podium has three places.
        native["label_gain"] = list(range(self.relevant_places + 1))
        native["lambdarank_truncation_level"] = self.relevant_places
        return native, rounds

    def score(self, features: pd.DataFrame) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("fit the model before predicting")
        return np.asarray(self.booster.predict(features), dtype=float)

    def params(self) -> dict[str, Any]:
        native, rounds = self.native_params()
        return {
            **native,
            "num_boost_round": rounds,
            "categorical_feature": self.categorical,
            "relevance": f"max(0, {self.relevant_places + 1} - finish_position)",
        }
