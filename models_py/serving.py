"""What users are served: the registered model (ONNX graph + post-processing, one pyfunc), the
champion decision, and the predictions store.

One registered model, one set of aliases. Its versions are MLflow pyfuncs that take the feature
table's rows as SQL returns them (`race_id` and the model's features) and return the served
probabilities: categorical values are encoded, the ONNX graph scores, and the post-processing
fitted on earlier seasons turns scores into probabilities that sum to 3 per race.
`mlflow.pyfunc.load_model("models:/podium@champion").predict(rows)` is all a caller needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import lightgbm as lgb
import mlflow
import numpy as np
import onnx
import onnxmltools
import onnxruntime
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from onnxmltools.convert.common.data_types import FloatTensorType

from models_py import tracking
from models_py.blend import OUTCOMES, outcomes, postprocessor_from_dict
from models_py.models import Recipe, model_matrix
from models_py.probability import PostProcessor
from models_py.race_model import ConditionalLogit
from models_py.settings import STORE_COLUMNS

CHAMPION = "champion"
CHALLENGER = "challenger"
RACE_COLUMN = "race_id"
SERVING_ARTIFACT = "served_model.json"
ONNX_INPUT = "features"
ONNX_PROBABILITIES = "probabilities"
# The highest opset onnxmltools' LightGBM converter supports with the pinned onnx.
ONNX_OPSET = 15
PARITY_TOLERANCE = 1e-5
PACKAGE_DIR = Path(__file__).resolve().parent
# What the served pyfunc imports, pinned to this environment: listing them spares MLflow its
# slow requirement inference (it would import the model in a subprocess).
SERVING_REQUIREMENTS = [
    f"{package}=={metadata.version(package)}"
    for package in ("mlflow", "onnxruntime", "pandas", "numpy", "scipy", "scikit-learn")
]


class ParityError(RuntimeError):
    """The ONNX graph does not reproduce the booster; nothing may be registered."""


class ServingError(RuntimeError):
    """Nothing can be served; the message says why."""


def to_onnx(booster: lgb.Booster, feature_count: int) -> onnx.ModelProto:
    return onnxmltools.convert_lightgbm(
        booster,
        name="podium_lgbm",
        initial_types=[(ONNX_INPUT, FloatTensorType([None, feature_count]))],
        zipmap=False,
        target_opset=ONNX_OPSET,
    )


def onnx_session(model: onnx.ModelProto | bytes) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the converter's label output has a loose declared shape
    payload = model if isinstance(model, bytes) else model.SerializeToString()
    return onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def onnx_scores(session: onnxruntime.InferenceSession, matrix: np.ndarray) -> np.ndarray:
    """P(podium) from the graph, in float64 for the post-processing."""
    [probabilities] = session.run(
        [ONNX_PROBABILITIES], {ONNX_INPUT: np.asarray(matrix, dtype=np.float32)}
    )
    return probabilities[:, 1].astype(np.float64)


def check_parity(model: onnx.ModelProto, booster: lgb.Booster, matrix: np.ndarray) -> float:
    """Max |onnx - lightgbm| over every row; raises ParityError above the tolerance."""
    difference = float(
        np.max(np.abs(onnx_scores(onnx_session(model), matrix) - booster.predict(matrix)))
    )
    if not difference <= PARITY_TOLERANCE:
        raise ParityError(
            f"the ONNX graph disagrees with LightGBM on {len(matrix)} rows: "
            f"max |onnx - lightgbm| = {difference:.2e} > {PARITY_TOLERANCE:.0e}; not registering"
        )
    return difference


# What a served model returns for every row (a pyfunc of this project returns a frame with them).
OUTPUT_COLUMNS = tuple(f"{outcome}_probability" for outcome in OUTCOMES)


class ServedModel(mlflow.pyfunc.PythonModel):
    """ONNX graph (LightGBM) + the race model's coefficients + encoding + post-processing.
    Input: `race_id` and the model's features, one row per entrant of each race (the race is
    the unit: normalisation and the race model work on whole races). Output: a frame of
    `podium_probability`, `win_probability` and `points_probability`."""

    def load_context(self, context: Any) -> None:
        served = json.loads(Path(context.artifacts["served"]).read_text(encoding="utf-8"))
        self.recipe = Recipe.from_dict(served["recipe"])
        self.categories: dict[str, list[str]] = served["categories"]
        self.postprocessor = postprocessor_from_dict(served["postprocessing"])
        race_model = served.get("race_model")
        self.race_model = ConditionalLogit.from_dict(race_model) if race_model else None
        self.session = onnx_session(Path(context.artifacts["onnx"]).read_bytes())

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        features = self.recipe.features
        missing = [name for name in (RACE_COLUMN, *features) if name not in model_input]
        if missing:
            raise ValueError(f"the podium model needs the columns {missing}")
        matrix = model_matrix(model_input, features, self.categories)
        scores = onnx_scores(self.session, matrix.to_numpy(dtype=np.float32))
        if self.race_model is not None:
            scores = np.column_stack([scores, self.race_model.score(matrix)])
        race_ids = model_input[RACE_COLUMN].to_numpy()
        return served_frame(self.postprocessor, race_ids, scores)


def served_frame(
    postprocessor: PostProcessor, race_ids: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """The served probabilities of every row, as a served model returns them."""
    frame = outcomes(postprocessor, race_ids, scores)
    return frame.rename(columns=lambda outcome: f"{outcome}_probability")[list(OUTPUT_COLUMNS)]


def served_probabilities(model: mlflow.pyfunc.PyFuncModel, rows: pd.DataFrame) -> pd.DataFrame:
    """P(podium), P(win) and P(points) of `rows` by a registered version. Versions registered
    before the race model return P(podium) alone: their P(win) and P(points) are missing."""
    output = model.predict(served_input(rows, model_features(model)))
    if isinstance(output, pd.DataFrame):
        return output[list(OUTPUT_COLUMNS)].reset_index(drop=True).astype(float)
    podium = np.asarray(output, dtype=float)
    return pd.DataFrame(
        {
            "podium_probability": podium,
            "win_probability": np.nan,
            "points_probability": np.nan,
        }
    )


def signature(example: pd.DataFrame, expected: np.ndarray) -> ModelSignature:
    """Input: `race_id` (required) and the features, any of which may be missing (null)."""
    inferred = infer_signature(example, expected)
    columns = [
        ColSpec(column.type, column.name, required=column.name == RACE_COLUMN)
        for column in inferred.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)


def served_input(rows: pd.DataFrame, features: tuple[str, ...] | list[str]) -> pd.DataFrame:
    return rows[[RACE_COLUMN, *features]].reset_index(drop=True)


def log_served_model(
    name: str,
    booster: lgb.Booster,
    recipe: Recipe,
    categories: dict[str, list[str]],
    postprocessor: PostProcessor,
    rows: pd.DataFrame,
    expected: pd.DataFrame,
    race_model: ConditionalLogit | None = None,
) -> tuple[str, float]:
    """Log the pyfunc (ONNX and the race model inside) in the active run; reload it and require
    that it serves `expected` on `rows` (the probabilities the metrics were computed on, as
    `served_frame` gives them). Returns its URI and the largest difference."""
    matrix = model_matrix(rows, recipe.features, categories).to_numpy(dtype=np.float64)
    graph = to_onnx(booster, len(recipe.features))
    check_parity(graph, booster, matrix)
    example = served_input(rows, recipe.features)
    served = {
        "recipe": recipe.to_dict(),
        "categories": categories,
        "postprocessing": postprocessor.to_dict(),
        "race_model": race_model.to_dict() if race_model is not None else None,
    }
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "model.onnx"
        onnx_path.write_bytes(graph.SerializeToString())
        served_path = Path(folder) / SERVING_ARTIFACT
        served_path.write_text(json.dumps(served, indent=2), encoding="utf-8")
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_logger.level
        # MLflow warns about pickling the model class and the missing input example; the class
        # ships with its code (code_paths), and the example is left out on purpose: it would go
        # through JSON, which cannot carry the NaNs of missing features.
        pyfunc_logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                info = mlflow.pyfunc.log_model(
                    name=name,
                    python_model=ServedModel(),
                    artifacts={"onnx": str(onnx_path), "served": str(served_path)},
                    signature=signature(example, expected),
                    code_paths=[str(PACKAGE_DIR)],
                    pip_requirements=SERVING_REQUIREMENTS,
                )
        finally:
            pyfunc_logger.setLevel(level)
    reloaded = mlflow.pyfunc.load_model(info.model_uri).predict(example)
    difference = float(
        np.max(
            np.abs(
                reloaded[list(OUTPUT_COLUMNS)].to_numpy(dtype=float)
                - expected[list(OUTPUT_COLUMNS)].to_numpy(dtype=float)
            )
        )
    )
    if not difference <= PARITY_TOLERANCE:
        raise ParityError(
            f"the logged model does not serve the probabilities its metrics were computed on "
            f"(max |diff| {difference:.2e} over {len(rows)} rows); not registering"
        )
    return info.model_uri, difference


def model_features(model: mlflow.pyfunc.PyFuncModel) -> list[str]:
    """The feature columns a served model reads, from its signature."""
    names = model.metadata.get_input_schema().input_names()
    return [name for name in names if name != RACE_COLUMN]


# Registry: aliases only (the stages API is deprecated), and no filter strings: every lookup is
# by name, version or alias, so a name with quotes or filter syntax cannot widen a search.


def alias_version(client: MlflowClient, model_name: str, alias: str) -> Any:
    """The version behind an alias, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def load_served(model_name: str, alias: str) -> tuple[mlflow.pyfunc.PyFuncModel, Any]:
    version = alias_version(MlflowClient(), model_name, alias)
    if version is None:
        raise ServingError(
            f"no registered model {model_name!r} with alias {alias!r}: train and register one "
            "with `python train.py`, or check --model-name / --alias"
        )
    return mlflow.pyfunc.load_model(f"models:/{model_name}/{version.version}"), version


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    challenger_brier: float
    champion_brier: float | None
    champion_version: str | None


def decide(
    challenger_brier: float, champion: Any, champion_brier: float | None, why_not: str = ""
) -> Decision:
    if champion is None:
        return Decision(True, "no champion yet", challenger_brier, None, None)
    if champion_brier is None:
        reason = why_not or f"champion v{champion.version} could not be re-scored"
        return Decision(False, reason, challenger_brier, None, champion.version)
    verdict = "beats" if challenger_brier < champion_brier else "does not beat"
    reason = (
        f"holdout Brier {challenger_brier:.5f} {verdict} champion v{champion.version}'s "
        f"{champion_brier:.5f}"
    )
    return Decision(
        challenger_brier < champion_brier,
        reason,
        challenger_brier,
        champion_brier,
        champion.version,
    )


def rescore_champion(
    champion: Any, season: int, read_rows: Callable[[list[str]], pd.DataFrame]
) -> tuple[float | None, str]:
    """The champion's holdout model's Brier on `season` now, on the same rows as the new model,
    or None and why not (it trained on that season, or needs features the table lost)."""
    tags = champion.tags
    if "holdout_model_uri" not in tags:
        return None, f"champion v{champion.version} carries no holdout model to re-score"
    trained = range(int(tags["holdout_train_first"]), int(tags["holdout_train_last"]) + 1)
    if season in trained:
        return None, (
            f"champion v{champion.version} was trained on {season}, so its Brier there is "
            "in-sample; promote by hand if intended"
        )
    model = mlflow.pyfunc.load_model(tags["holdout_model_uri"])
    features = model_features(model)
    try:
        rows = read_rows(features)
    except Exception as error:  # the table no longer carries what the champion needs
        return None, f"champion v{champion.version} cannot be re-scored: {error}"
    probability = served_probabilities(model, rows)["podium_probability"].to_numpy()
    actual = rows["podium"].to_numpy(dtype=float)
    return float(np.mean((np.clip(probability, 0, 1) - actual) ** 2)), ""


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    decision: Decision

    def describe(self) -> str:
        verdict = "promoted to champion" if self.decision.promoted else "left as challenger"
        return f"registered {self.model_name} v{self.version}: {verdict}: {self.decision.reason}"


def register(
    model_name: str,
    model_uri: str,
    decide: Callable[[Any], Decision],
    tags: dict[str, str],
    aliases: tuple[str, ...] = (CHAMPION, CHALLENGER),
) -> Registration:
    """A new version: tagged first, then `champion` if `decide` (given the champion at that
    moment, or None) promotes it, then `challenger` (the `aliases` it may take).

    Trainings against one tracking server at the same time take turns here in the order the
    registry numbered their versions: each decides against the champion the ones before it
    left, so the champion moves once per better model and never back to a worse one. Each
    alias move is one registry call, so an interrupt leaves every alias on a complete
    version: at worst the new version is registered without its aliases.
    """
    client = MlflowClient()
    # Tagged as it is created: a later version that looks at it knows at once whose turn it is.
    version = mlflow.register_model(model_uri, model_name, tags=tracking.process_tags()).version
    try:
        decision = decide_in_turn(client, model_name, str(version), decide, tags, aliases)
    except BaseException:
        # Whoever registers next must not wait for this version's decision.
        with contextlib.suppress(Exception):
            client.set_model_version_tag(model_name, version, DECIDED_TAG, "abandoned")
        raise
    client.set_model_version_tag(model_name, version, DECIDED_TAG, "true")
    return Registration(model_name, str(version), decision)


def decide_in_turn(
    client: MlflowClient,
    model_name: str,
    version: str,
    decide: Callable[[Any], Decision],
    tags: dict[str, str],
    aliases: tuple[str, ...],
) -> Decision:
    wait_for_earlier_decision(client, model_name, int(version))
    decision = decide(alias_version(client, model_name, CHAMPION))
    record = {
        **tags,
        "champion_version_compared": decision.champion_version or "none",
        "champion_holdout_brier_rescored": (
            f"{decision.champion_brier:.6f}" if decision.champion_brier is not None else "none"
        ),
        "promoted": str(decision.promoted).lower(),
        "decision": decision.reason,
    }
    for key, value in record.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.update_model_version(
        model_name,
        version,
        description=(
            f"{'Promoted to champion' if decision.promoted else 'Challenger only'}: "
            f"{decision.reason}."
        ),
    )
    if decision.promoted and CHAMPION in aliases:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    if CHALLENGER in aliases:
        client.set_registered_model_alias(model_name, CHALLENGER, version)
    return decision


DECIDED_TAG = "pitwall.aliases_decided"
# How long a version waits for the one before it (another training's decision takes seconds;
# a process on another machine that died mid-decision is given up on after this).
DECISION_WAIT_SECONDS = 300


def wait_for_earlier_decision(
    client: MlflowClient, model_name: str, version: int, timeout: float = DECISION_WAIT_SECONDS
) -> None:
    """Wait until the version before this one has moved its aliases (or its process died).
    Versions decide in their registry order, and each waits only for its predecessor."""
    if version <= 1:
        return
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            earlier = client.get_model_version(model_name, str(version - 1))
        except MlflowException:
            return  # deleted
        tags = earlier.tags
        if DECIDED_TAG in tags or tracking.MACHINE_TAG not in tags:
            return  # decided, or registered before versions took turns
        if tracking.left_by_dead_process(tags):
            return  # its process died before deciding
        if time.monotonic() > deadline:
            print(
                f"  {model_name} v{version - 1} has not decided its aliases in {timeout:.0f} s "
                f"({tags.get(tracking.COMMAND_TAG)}, {tags.get(tracking.HOST_TAG)}); "
                f"deciding v{version} without it",
                flush=True,
            )
            return
        if not said:
            print(f"  waiting for {model_name} v{version - 1}'s champion decision", flush=True)
            said = True
        time.sleep(1)


# The predictions store: Parquet outside the warehouse file (a `dbt build` replaces that file),
# which dbt reads live as `predictions`, `latest_predictions` and `prediction_scorecard`.


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_forecast(store: Path, rows: pd.DataFrame) -> Path:
    """Append one forecast (one race, one moment, one call) as a file of its own: nothing is
    ever replaced, so an earlier forecast of the same race stays beside a later one. Readers
    see a whole file or none (written aside, then renamed)."""
    first = rows.iloc[0]
    folder = store / str(first["moment"]) / f"race_{int(first['race_id'])}"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp(first["predicted_at"]).strftime("%Y%m%dT%H%M%S%f")
    label = first["replay"] if isinstance(first["replay"], str) else f"v{first['model_version']}"
    name = f"{stamp}_{safe_name(str(first['model_name']))}_{safe_name(label)}"
    target = folder / f"{name}_{str(first['forecast_id'])[:8]}.parquet"
    partial = folder / f".{target.name}.{os.getpid()}.tmp"
    casts = ", ".join(
        f'cast("{column}" as {kind}) as "{column}"' for column, kind in STORE_COLUMNS.items()
    )
    with duckdb.connect() as connection:
        connection.register("forecast", rows[list(STORE_COLUMNS)])
        connection.execute(f"copy (select {casts} from forecast) to '{partial}' (format parquet)")
    os.replace(partial, target)
    return target
