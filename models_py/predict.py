"""`python train.py predict`: score a race with the registered ONNX model and store the result.

Predictions go to an append-only Parquet store outside the warehouse file (a `dbt build` may
replace that file), one file per (model, version, race): scoring the same race with the same
version again replaces its file instead of adding rows. dbt exposes the store as `predictions`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from models_py import onnx_export
from models_py.config import (
    REPO_ROOT,
    add_location_options,
    default_dbt_manifest,
    default_tracking_uri,
    default_warehouse,
)
from models_py.dataset import DatasetError, load_feature_spec, read_features
from models_py.postprocessing import RAW, from_dict
from models_py.registry import (
    CHAMPION,
    alias_version,
    onnx_model_name,
    run_encoding,
    run_features,
    run_postprocessing,
)

DEFAULT_MODEL_NAME = "podium-lgbm"


class PredictError(RuntimeError):
    """Nothing can be scored; the message says why."""


def default_store() -> Path:
    return Path(os.environ.get("PITWALL_PREDICTIONS_DIR", REPO_ROOT / "predictions"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py predict",
        description=(
            "Score the upcoming race (or --race-id) with a registered ONNX model, print the "
            "probabilities and store them for the `predictions` model in dbt."
        ),
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help="registered model (default podium-lgbm); its ONNX twin is <name>-onnx",
    )
    parser.add_argument(
        "--alias", default=CHAMPION, help="registry alias to load (default champion)"
    )
    parser.add_argument(
        "--race-id",
        type=int,
        default=None,
        help="score this race instead of the upcoming one (past races too)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="predictions store folder (default: $PITWALL_PREDICTIONS_DIR or ./predictions)",
    )
    add_location_options(parser)
    return parser


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_predictions(
    store: Path, rows: pd.DataFrame, model_name: str, version: str, race_id: int
) -> Path:
    folder = store / safe_name(model_name) / f"version={version}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"race_{race_id}.parquet"
    partial = folder / f".race_{race_id}.parquet.{os.getpid()}.tmp"
    with duckdb.connect() as connection:
        connection.register("scored", rows)
        connection.execute(f"copy scored to '{partial}' (format parquet)")
    os.replace(partial, target)  # readers see the old file or the new one, never half of one
    return target


def score(args: argparse.Namespace) -> tuple[pd.DataFrame, Path]:
    mlflow.set_tracking_uri(args.tracking_uri or default_tracking_uri())
    client = MlflowClient()
    onnx_name = onnx_model_name(args.model_name)
    version = alias_version(client, onnx_name, args.alias)
    if version is None:
        raise PredictError(
            f"no registered model {onnx_name!r} with alias {args.alias!r}: train and register "
            "one with `python train.py`, or check --model-name / --alias"
        )
    features = run_features(client, version.run_id)
    spec = load_feature_spec((args.dbt_manifest or default_dbt_manifest()).resolve())
    data = read_features(
        (args.warehouse or default_warehouse()).resolve(),
        spec,
        categories=run_encoding(client, version.run_id),
    )
    missing = [name for name in features if name not in data.frame.columns]
    if missing:
        raise PredictError(f"model {onnx_name} v{version.version} needs missing features {missing}")
    frame = data.frame
    if args.race_id is not None:
        rows = frame[frame["race_id"] == args.race_id]
        if rows.empty:
            raise PredictError(f"race {args.race_id} is not in podium_features")
    else:
        rows = frame[frame["is_upcoming"]]
        if rows.empty:
            raise PredictError("no upcoming race in the data: every scheduled race has results")
    runtime = onnx_export.session(mlflow.onnx.load_model(version.source))
    recorded = run_postprocessing(client, version.run_id)
    postprocessor = from_dict(recorded) if recorded else RAW
    raw = onnx_export.predict(runtime, rows[features])
    scored = rows[
        [
            "race_id",
            "year",
            "round",
            "driver_id",
            "constructor_id",
            "driver_name",
            "constructor_name",
        ]
    ].assign(
        podium_probability=postprocessor.apply(rows["race_id"].to_numpy(), raw),
        model_name=onnx_name,
        model_version=str(version.version),
        model_alias=args.alias,
        scored_at=datetime.now(UTC),
    )
    scored = scored.sort_values("podium_probability", ascending=False).reset_index(drop=True)
    race_id = int(scored["race_id"].iloc[0])
    path = write_predictions(
        (args.store or default_store()).resolve(), scored, onnx_name, version.version, race_id
    )
    return scored, path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scored, path = score(args)
    except (PredictError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    first = scored.iloc[0]
    print(
        f"{first['year']} round {first['round']} (race {first['race_id']}), "
        f"{first['model_name']} v{first['model_version']} (@{args.alias}):"
    )
    table = scored[["driver_name", "constructor_name", "podium_probability"]].copy()
    table["podium_probability"] = table["podium_probability"].map(lambda p: f"{p:6.1%}")
    table.index = range(1, len(table) + 1)
    print(table.to_string(header=["driver", "team", "podium"]))
    print(
        f"stored in {path}; in the warehouse: `select * from predictions` (a live view of the "
        "store; if it was empty at the last `make build`, build once more)"
    )
    return 0
