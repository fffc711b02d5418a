"""Model registry: register the new version as `challenger`, promote to `champion` only on merit.

The champion is re-scored now, on exactly the holdout rows the new version was scored on, with
its own feature encoding: a Brier stored when it was trained came from other data. Aliases only
(the stages API is deprecated), and no filter strings: every lookup is by name, version or alias.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.metrics import brier_score_loss

from models_py.dataset import FeatureSpec, read_features
from models_py.served import POSTPROCESSING_ARTIFACT, served_input

CHAMPION = "champion"
CHALLENGER = "challenger"
ENCODING_ARTIFACT = "feature_encoding.json"


def onnx_model_name(model_name: str) -> str:
    return f"{model_name}-onnx"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    challenger_brier: float
    champion_brier: float | None
    champion_version: str | None


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    onnx_version: str
    decision: Decision


def alias_version(client: MlflowClient, model_name: str, alias: str):
    """The version behind an alias, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def run_encoding(client: MlflowClient, run_id: str) -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, ENCODING_ARTIFACT, folder)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def run_postprocessing(client: MlflowClient, run_id: str) -> dict | None:
    """The post-processing a run's model serves with; None for runs from before it existed."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, POSTPROCESSING_ARTIFACT, folder)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))


def run_features(client: MlflowClient, run_id: str) -> list[str]:
    return client.get_run(run_id).data.params["features"].split(",")


def rescore_champion(
    client: MlflowClient,
    champion,
    warehouse: Path,
    spec: FeatureSpec,
    test_season: int,
) -> tuple[float | None, str]:
    """The champion's holdout Brier on the given season's rows now, or None and why not."""
    params = client.get_run(champion.run_id).data.params
    trained_on = range(
        int(params["test_season"]) - int(params["window"]), int(params["test_season"])
    )
    if test_season in trained_on:
        return None, (
            f"champion v{champion.version} was trained on {test_season}, so its Brier there is "
            "in-sample; promote by hand if intended"
        )
    features = run_features(client, champion.run_id)
    data = read_features(warehouse, spec, categories=run_encoding(client, champion.run_id))
    missing = [name for name in features if name not in data.frame.columns]
    if missing:
        return None, (
            f"champion v{champion.version} needs features no longer in the table ({missing}); "
            "promote by hand if intended"
        )
    rows = data.past[data.past["year"] == test_season]
    model = mlflow.pyfunc.load_model(champion.source)
    if "lightgbm" in model.metadata.flavors:
        # A champion from before post-processing was served: the bare booster.
        probability = model.predict(rows[features])
    else:
        probability = model.predict(served_input(rows, features))
    probability = np.clip(np.asarray(probability, dtype=float), 0, 1)
    return float(brier_score_loss(rows[spec.target].to_numpy(dtype=int), probability)), ""


def decide(
    challenger_brier: float, champion, champion_brier: float | None, why_not_compared: str = ""
) -> Decision:
    if champion is None:
        return Decision(True, "no champion yet", challenger_brier, None, None)
    if champion_brier is None:
        reason = why_not_compared or f"champion v{champion.version} could not be re-scored"
        return Decision(False, reason, challenger_brier, None, champion.version)
    if challenger_brier < champion_brier:
        reason = (
            f"holdout Brier {challenger_brier:.5f} beats champion v{champion.version}'s "
            f"{champion_brier:.5f}"
        )
        return Decision(True, reason, challenger_brier, champion_brier, champion.version)
    reason = (
        f"holdout Brier {challenger_brier:.5f} does not beat champion v{champion.version}'s "
        f"{champion_brier:.5f}"
    )
    return Decision(False, reason, challenger_brier, champion_brier, champion.version)


def register(
    model_name: str,
    model_uri: str,
    onnx_uri: str,
    challenger_brier: float,
    warehouse: Path,
    spec: FeatureSpec,
    test_season: int,
    tags: dict[str, str],
) -> Registration:
    client = MlflowClient()
    champion = alias_version(client, model_name, CHAMPION)
    champion_brier, why_not = (
        rescore_champion(client, champion, warehouse, spec, test_season) if champion else (None, "")
    )
    decision = decide(challenger_brier, champion, champion_brier, why_not)

    version = mlflow.register_model(model_uri, model_name).version
    onnx_version = mlflow.register_model(onnx_uri, onnx_model_name(model_name)).version
    record = {
        **tags,
        "holdout_brier": f"{challenger_brier:.6f}",
        "champion_version_compared": decision.champion_version or "none",
        "champion_holdout_brier_rescored": (
            f"{decision.champion_brier:.6f}" if decision.champion_brier is not None else "none"
        ),
        "promoted": str(decision.promoted).lower(),
        "decision": decision.reason,
    }
    description = (
        f"{'Promoted to champion' if decision.promoted else 'Challenger only'}: {decision.reason}."
    )
    for name, number, twin in (
        (model_name, version, ("onnx_version", onnx_version)),
        (onnx_model_name(model_name), onnx_version, ("lgbm_version", version)),
    ):
        for key, value in {**record, twin[0]: twin[1]}.items():
            client.set_model_version_tag(name, number, key, value)
        client.update_model_version(name, number, description=description)
        client.set_registered_model_alias(name, CHALLENGER, number)
        if decision.promoted:
            client.set_registered_model_alias(name, CHAMPION, number)
    return Registration(model_name, version, onnx_version, decision)
