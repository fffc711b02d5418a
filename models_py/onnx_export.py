"""ONNX export of the LightGBM booster, refused unless it reproduces the booster's probabilities."""

from __future__ import annotations

import numpy as np
import onnx
import onnxmltools
import onnxruntime
import pandas as pd
from lightgbm import Booster
from onnxmltools.convert.common.data_types import FloatTensorType

INPUT_NAME = "features"
PROBABILITY_OUTPUT = "probabilities"
PARITY_TOLERANCE = 1e-5
# The highest opset onnxmltools' LightGBM converter supports with the pinned onnx.
TARGET_OPSET = 15


class OnnxParityError(RuntimeError):
    """The ONNX model does not reproduce the booster; nothing may be registered."""


def convert(booster: Booster, feature_count: int) -> onnx.ModelProto:
    return onnxmltools.convert_lightgbm(
        booster,
        name="podium_lgbm",
        initial_types=[(INPUT_NAME, FloatTensorType([None, feature_count]))],
        zipmap=False,
        target_opset=TARGET_OPSET,
    )


def session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the converter's label output has a loose declared shape
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def predict(
    runtime: onnxruntime.InferenceSession, features: pd.DataFrame | np.ndarray
) -> np.ndarray:
    matrix = np.asarray(features, dtype=np.float32)
    [probabilities] = runtime.run([PROBABILITY_OUTPUT], {INPUT_NAME: matrix})
    return probabilities[:, 1].astype(np.float64)


def check_parity(model: onnx.ModelProto, booster: Booster, features: pd.DataFrame) -> float:
    """Max |p_onnx - p_lightgbm| over every row; raises OnnxParityError above the tolerance."""
    onnx_probability = predict(session(model), features)
    booster_probability = booster.predict(features)
    difference = float(np.max(np.abs(onnx_probability - booster_probability)))
    if not difference <= PARITY_TOLERANCE:
        raise OnnxParityError(
            f"ONNX model disagrees with LightGBM on {len(features)} holdout rows: "
            f"max |p_onnx - p_lightgbm| = {difference:.2e} > {PARITY_TOLERANCE:.0e}; "
            "not registering"
        )
    return difference
