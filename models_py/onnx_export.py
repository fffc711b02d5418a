"""ONNX export of the LightGBM booster, refused unless it reproduces the booster's raw output.

The ONNX twin is the booster only: a probability for the classifier, a score for the ranker.
The post-processing that turns it into served probabilities is JSON beside it in the run
(`postprocessing.json`), applied by `predict` after the ONNX session, as the pyfunc applies it.
"""

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
# Absolute for probabilities; ranking scores are unbounded, so their tolerance scales with them.
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
    """The booster's raw output: P(podium) for the classifier, the score for the ranker."""
    matrix = np.asarray(features, dtype=np.float32)
    outputs = [output.name for output in runtime.get_outputs()]
    if PROBABILITY_OUTPUT in outputs:
        [probabilities] = runtime.run([PROBABILITY_OUTPUT], {INPUT_NAME: matrix})
        return probabilities[:, 1].astype(np.float64)
    [scores] = runtime.run([outputs[0]], {INPUT_NAME: matrix})
    return np.ravel(scores).astype(np.float64)


def check_parity(model: onnx.ModelProto, booster: Booster, features: pd.DataFrame) -> float:
    """Max |onnx - lightgbm| over every row; raises OnnxParityError above the tolerance."""
    onnx_output = predict(session(model), features)
    booster_output = booster.predict(features)
    difference = float(np.max(np.abs(onnx_output - booster_output)))
    tolerance = PARITY_TOLERANCE * max(1.0, float(np.max(np.abs(booster_output))))
    if not difference <= tolerance:
        raise OnnxParityError(
            f"ONNX model disagrees with LightGBM on {len(features)} holdout rows: "
            f"max |onnx - lightgbm| = {difference:.2e} > {tolerance:.0e}; not registering"
        )
    return difference
