"""The served model as MLflow logs it: the booster and its post-processing, as one pyfunc.

`predict(race rows)` returns the probabilities users read, exactly those the holdout metrics
were computed on: the booster's raw output, then the post-processor fitted on earlier seasons
(Platt calibration and per-race normalisation, or Plackett-Luce for the ranker). Rows must carry
`race_id`, because normalisation works on a whole race at once.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from models_py.postprocessing import PostProcessor, from_dict

POSTPROCESSING_ARTIFACT = "postprocessing.json"
RACE_COLUMN = "race_id"
PACKAGE_DIR = Path(__file__).resolve().parent


class ServedPodiumModel(mlflow.pyfunc.PythonModel):
    """Booster + post-processor; input: `race_id` and the model's features, one row per entrant."""

    def load_context(self, context: Any) -> None:
        self.booster = lgb.Booster(model_file=context.artifacts["booster"])
        self.features = list(self.booster.feature_name())
        postprocessing = Path(context.artifacts["postprocessing"]).read_text(encoding="utf-8")
        self.postprocessor = from_dict(json.loads(postprocessing))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        missing = [name for name in [RACE_COLUMN, *self.features] if name not in model_input]
        if missing:
            raise ValueError(f"the podium model needs the columns {missing}")
        raw = self.booster.predict(model_input[self.features].astype("float64"))
        return self.postprocessor.apply(model_input[RACE_COLUMN].to_numpy(), raw)


def served_input(rows: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    return rows[[RACE_COLUMN, *features]].reset_index(drop=True)


def log_served_model(
    booster: lgb.Booster, postprocessor: PostProcessor, example: pd.DataFrame, expected: np.ndarray
) -> str:
    """Log the pyfunc in the active run, the post-processing JSON beside it; returns its URI."""
    with tempfile.TemporaryDirectory() as folder:
        booster_path = Path(folder) / "booster.txt"
        booster.save_model(str(booster_path))
        postprocessing_path = Path(folder) / POSTPROCESSING_ARTIFACT
        postprocessing_path.write_text(json.dumps(postprocessor.to_dict(), indent=2), "utf-8")
        mlflow.log_artifact(str(postprocessing_path))
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_logger.level
        # MLflow warns about pickling the model class and about the missing input example;
        # the class ships with its code (code_paths), and the example is left out on purpose.
        pyfunc_logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=ServedPodiumModel(),
                    artifacts={
                        "booster": str(booster_path),
                        "postprocessing": str(postprocessing_path),
                    },
                    # A signature, not an input example: the example would go through JSON,
                    # which cannot carry the NaNs of missing features.
                    signature=infer_signature(example, expected),
                    code_paths=[str(PACKAGE_DIR)],
                )
        finally:
            pyfunc_logger.setLevel(level)
    return info.model_uri
