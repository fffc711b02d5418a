"""ONNX export keeps categorical splits and missing values; a parity failure is an error."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models_py import onnx_export
from models_py.modelling import (
    DATASET_PARAMS,
    LightGBMModel,
    float32_thresholds,
    lightgbm_training_params,
)


def categorical_problem(rows: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    generator = np.random.default_rng(7)
    # The label depends on a non-ordinal set of category codes, so only categorical splits
    # (LightGBM's "==" decisions over a category set) can express it.
    category = generator.integers(0, 12, rows).astype(float)
    rate = generator.random(rows)
    rate[generator.random(rows) < 0.1] = np.nan
    logit = np.where(np.isin(category, [1, 4, 7, 10]), 1.5, -1.5) + 2 * np.nan_to_num(rate, nan=0.5)
    target = (generator.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"team_code": category, "rate": rate}), target


@pytest.fixture(scope="module")
def model() -> LightGBMModel:
    features, target = categorical_problem()
    return LightGBMModel(categorical=["team_code"], seed=1, threads=1).fit(features, target)


def categorical_split_count(model: LightGBMModel) -> int:
    def walk(node: dict) -> int:
        if "split_index" not in node:
            return 0
        own = 1 if node.get("decision_type") == "==" else 0
        return own + walk(node["left_child"]) + walk(node["right_child"])

    assert model.booster is not None
    return sum(walk(tree["tree_structure"]) for tree in model.booster.dump_model()["tree_info"])


def test_categorical_splits_and_missing_values_survive_conversion(model: LightGBMModel) -> None:
    assert categorical_split_count(model) > 0
    features, _ = categorical_problem(500)
    # Unseen category codes and missing values, too.
    features.loc[:20, "team_code"] = 99.0
    features.loc[21:40, "team_code"] = np.nan
    converted = onnx_export.convert(model.booster, 2)
    difference = onnx_export.check_parity(converted, model.booster, features)
    assert difference <= onnx_export.PARITY_TOLERANCE


def test_parity_failure_is_a_clear_error(model: LightGBMModel) -> None:
    features, target = categorical_problem(500)
    other = LightGBMModel(categorical=["team_code"], seed=2, threads=1, scale_pos_weight=5.0)
    other.fit(features, target)
    # A model converted from another booster cannot match this one.
    converted = onnx_export.convert(other.booster, 2)
    with pytest.raises(onnx_export.OnnxParityError, match="not registering"):
        onnx_export.check_parity(converted, model.booster, features)


def test_thresholds_between_adjacent_float32_values_agree_with_onnx() -> None:
    # Two training values one float32 step apart: LightGBM splits at their float64 midpoint,
    # which float32 rounding (ties to even) moves onto the upper value.
    lower = np.nextafter(np.float32(1.0), np.float32(2.0))
    upper = np.nextafter(lower, np.float32(2.0))
    generator = np.random.default_rng(3)
    values = np.where(generator.random(2000) < 0.5, lower, upper).astype(np.float64)
    target = ((values == upper) ^ (generator.random(2000) < 0.1)).astype(int)
    features = pd.DataFrame({"pace": values})
    params = {"n_estimators": 5, "min_child_samples": 5, "learning_rate": 0.5}
    model = LightGBMModel(categorical=[], seed=1, threads=1, hyperparameters=params)
    model.fit(features, target)
    raw = lgb.train(
        lightgbm_training_params(params, 1, 1, 1.0)[0],
        lgb.Dataset(features, label=target, params=DATASET_PARAMS),
        num_boost_round=5,
    )
    # The untouched booster disagrees with its own ONNX conversion on the upper value...
    with pytest.raises(onnx_export.OnnxParityError):
        onnx_export.check_parity(onnx_export.convert(raw, 1), raw, features)
    # ...the float32-safe one agrees, and predicts exactly what the untouched one does.
    assert np.array_equal(model.booster.predict(features), raw.predict(features))
    converted = onnx_export.convert(model.booster, 1)
    assert onnx_export.check_parity(converted, model.booster, features) <= 1e-6
    # Applying it twice changes nothing: every threshold is already a float32.
    twice = float32_thresholds(model.booster)
    assert twice.model_to_string() == model.booster.model_to_string()
