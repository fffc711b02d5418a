"""The podium model (LightGBM) and the baselines it must beat, behind one small interface."""

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

# The podium model's defaults: a moderate learning rate with enough trees, and row and column
# bagging (LightGBM ignores `subsample` unless `subsample_freq` is set, so both are given).
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}


class PodiumModel(Protocol):
    name: str

    def fit(self, features: pd.DataFrame, target: np.ndarray) -> PodiumModel: ...

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray: ...

    def params(self) -> dict[str, Any]: ...


def lightgbm_training_params(
    params: dict[str, Any], seed: int, threads: int, scale_pos_weight: float
) -> tuple[dict[str, Any], int]:
    """LightGBM's native parameters for a deterministic binary model, and the number of rounds."""
    native = {key: value for key, value in params.items() if key != "n_estimators"}
    native.update(
        objective="binary",
        scale_pos_weight=scale_pos_weight,
        seed=seed,
        deterministic=True,
        force_row_wise=True,
        num_threads=threads,
        verbosity=-1,
    )
    return native, int(params.get("n_estimators", 100))


@dataclass
class LightGBMModel:
    """LightGBM binary classifier; `scale_pos_weight` defaults to negatives / positives."""

    categorical: list[str]
    seed: int
    threads: int
    hyperparameters: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_LGBM_PARAMS))
    scale_pos_weight: float | None = None
    name: str = "lgbm"
    booster: lgb.Booster | None = None
    fitted_scale_pos_weight: float | None = None

    def fit(self, features: pd.DataFrame, target: np.ndarray) -> LightGBMModel:
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
            free_raw_data=False,
        )
        self.booster = lgb.train(native, dataset, num_boost_round=rounds)
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("fit the model before predicting")
        return np.asarray(self.booster.predict(features), dtype=float)

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

    def fit(self, features: pd.DataFrame, target: np.ndarray) -> RuleModel:
        # A debutant has no rate; the training base rate is the honest guess for them.
        self.fallback = float(np.mean(target))
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return features[RULE_FEATURE].fillna(self.fallback).to_numpy(dtype=float)

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

    def fit(self, features: pd.DataFrame, target: np.ndarray) -> LogisticModel:
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

    def params(self) -> dict[str, Any]:
        return {
            "imputation": "median (numeric), most frequent (categorical)",
            "scaling": "standard",
            "encoding": "one-hot",
            "max_iter": 2000,
            "C": 1.0,
        }
