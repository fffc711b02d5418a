"""Read `podium_features` from the warehouse, read-only, with the feature list dbt declares.

The feature list lives in one place: the `meta` of the columns of `podium_features` in its dbt
YAML, which dbt writes into `target/manifest.json`: `feature` (the default model's inputs),
`feature_group` (the lever a column belongs to in the ablation; a grouped column that is not a
`feature` is a measured candidate), `categorical`, `target` and `ranking_label`. This module reads
them from there, checks the warehouse table against them (every column present with its contract
type), and selects the rows with SQL. Nothing here computes a feature.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

FEATURE_TABLE = "podium_features"
MODEL_NODE = "model.pitwall.podium_features"
KEY_COLUMNS = ("race_id", "driver_id", "constructor_id", "year", "round", "is_upcoming")
DISPLAY_COLUMNS = ("driver_name", "constructor_name")

# Contract types as dbt writes them → DuckDB's information_schema spelling.
DUCKDB_TYPES = {
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "varchar": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
}


class DatasetError(RuntimeError):
    """The warehouse or the dbt manifest is not what training needs; the message says what."""


UNGROUPED = "ungrouped"


@dataclass(frozen=True)
class FeatureSpec:
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str
    column_types: dict[str, str]
    sql_sha256: str
    groups: dict[str, str]
    ranking_label: str | None = None

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(name for name in self.features if name not in self.categorical)

    @property
    def model_columns(self) -> tuple[str, ...]:
        """Every column a model may use: the default features, then the measured candidates."""
        return (*self.features, *(name for name in self.groups if name not in self.features))

    def group_features(self, *groups: str) -> tuple[str, ...]:
        return tuple(name for name in self.model_columns if self.groups[name] in groups)

    def select(self, features: list[str] | tuple[str, ...]) -> FeatureSpec:
        """The same table with another feature list (an ablation step, a trained model's own)."""
        unknown = [name for name in features if name not in self.groups]
        if unknown:
            raise DatasetError(f"{FEATURE_TABLE} declares no feature {unknown}")
        return replace(self, features=tuple(features))


@dataclass(frozen=True)
class FeatureData:
    """Rows of the feature table, features encoded as floats for the models."""

    frame: pd.DataFrame
    spec: FeatureSpec
    categories: dict[str, list[str]]
    source: str

    @property
    def features(self) -> list[str]:
        return list(self.spec.features)

    @property
    def categorical(self) -> list[str]:
        """The categorical columns among this data's features."""
        return [name for name in self.spec.features if name in self.spec.categorical]

    def with_features(self, features: list[str] | tuple[str, ...]) -> FeatureData:
        return replace(self, spec=self.spec.select(features))

    @property
    def past(self) -> pd.DataFrame:
        """Rows of races that have results (the upcoming race's rows excluded)."""
        return self.frame[~self.frame["is_upcoming"]]

    @property
    def seasons_with_results(self) -> list[int]:
        return sorted(self.past["year"].unique().tolist())

    def seasons(self, years: tuple[int, ...] | list[int] | range) -> pd.DataFrame:
        return self.frame[self.frame["year"].isin(list(years))]


def lineage_sha256(manifest: dict, node_id: str) -> str:
    """A hash of the SQL, seeds and macros that define a model and everything upstream of it.

    dbt's per-file checksums do not depend on where the warehouse lives (compiled SQL embeds the
    database name), so the same feature definitions give the same hash on every machine, and a
    change to any upstream model or seed changes it.
    """
    parents = manifest.get("parent_map", {})
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    seen: set[str] = set()
    frontier = [node_id]
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        frontier.extend(parents.get(current, []))
    macros = manifest.get("macros", {})
    used_macros = {
        macro
        for name in seen
        for macro in nodes.get(name, {}).get("depends_on", {}).get("macros", [])
    }
    digest = hashlib.sha256()
    for name in sorted(seen):
        checksum = nodes.get(name, {}).get("checksum", {}).get("checksum", "")
        digest.update(f"{name}:{checksum}\n".encode())
    for macro in sorted(used_macros):
        # Macros (the lagged window lives in one) have no checksum: hash their SQL.
        digest.update(f"{macro}:{macros.get(macro, {}).get('macro_sql', '')}\n".encode())
    return digest.hexdigest()


def load_feature_spec(manifest_path: Path) -> FeatureSpec:
    if not manifest_path.exists():
        raise DatasetError(
            f"dbt manifest not found at {manifest_path}: build the warehouse first (make build)"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    node = manifest.get("nodes", {}).get(MODEL_NODE)
    if node is None:
        raise DatasetError(f"{manifest_path} has no model {FEATURE_TABLE}")
    features: list[str] = []
    categorical: list[str] = []
    targets: list[str] = []
    ranking_labels: list[str] = []
    groups: dict[str, str] = {}
    column_types: dict[str, str] = {}
    for name, column in node["columns"].items():
        meta = column.get("config", {}).get("meta") or column.get("meta") or {}
        column_types[name] = (column.get("data_type") or "").lower()
        if meta.get("feature") or meta.get("feature_group"):
            groups[name] = meta.get("feature_group") or UNGROUPED
            if meta.get("categorical"):
                categorical.append(name)
        if meta.get("feature"):
            features.append(name)
        if meta.get("target"):
            targets.append(name)
        if meta.get("ranking_label"):
            ranking_labels.append(name)
    if not features:
        raise DatasetError(f"{FEATURE_TABLE} in {manifest_path} declares no meta.feature column")
    if len(targets) != 1:
        raise DatasetError(f"{FEATURE_TABLE} must declare exactly one meta.target column")
    if len(ranking_labels) > 1:
        raise DatasetError(f"{FEATURE_TABLE} declares more than one meta.ranking_label column")
    return FeatureSpec(
        features=tuple(features),
        categorical=tuple(categorical),
        target=targets[0],
        column_types=column_types,
        sql_sha256=lineage_sha256(manifest, MODEL_NODE),
        groups=groups,
        ranking_label=ranking_labels[0] if ranking_labels else None,
    )


def check_table(connection: duckdb.DuckDBPyConnection, spec: FeatureSpec, where: Path) -> None:
    actual = dict(
        connection.execute(
            "select column_name, data_type from information_schema.columns where table_name = ?",
            [FEATURE_TABLE],
        ).fetchall()
    )
    if not actual:
        raise DatasetError(
            f"{where} has no table {FEATURE_TABLE}: run `make build` (dbt) before training"
        )
    labels = [spec.target] + ([spec.ranking_label] if spec.ranking_label else [])
    needed = [*KEY_COLUMNS, *spec.model_columns, *labels]
    for name in needed:
        if name not in actual:
            raise DatasetError(f"{where}: {FEATURE_TABLE} has no column {name!r}")
        expected = DUCKDB_TYPES.get(spec.column_types.get(name, ""))
        if expected and actual[name] != expected:
            raise DatasetError(
                f"{where}: {FEATURE_TABLE}.{name} is {actual[name]}, "
                f"the dbt contract says {expected}"
            )


FEATURE_DECIMALS = 4


def quantise(values: np.ndarray) -> np.ndarray:
    """Features as the ONNX twin serves them: float32, on a grid of 1e-4.

    ONNX runs trees in float32, thresholds included. A split threshold is the midpoint of two
    training values; if those differ by a hair (two windows' averages, 1e-16 apart), the float32
    threshold can land on one of them and send it the other way. On a 1e-4 grid neighbouring
    values are far apart at float32 precision, so booster and ONNX agree on every split.
    """
    return np.round(values, FEATURE_DECIMALS).astype("float32").astype("float64")


def read_features(
    warehouse: Path, spec: FeatureSpec, categories: dict[str, list[str]] | None = None
) -> FeatureData:
    """All rows of the feature table (past and upcoming), model columns encoded as floats.

    Every column a model may use is read (the default features and the measured candidates).
    Categorical columns become positions in one fixed category list per column: the whole
    table's sorted values, or `categories` (a trained model's own lists, so that scoring encodes
    exactly as training did; values it never saw become missing).
    """
    if not warehouse.exists():
        raise DatasetError(f"no warehouse at {warehouse}: run `make setup` or `make build` first")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        check_table(connection, spec, warehouse)
        categories = dict(categories or {})
        for name in spec.categorical:
            if name not in categories:
                categories[name] = [
                    value
                    for (value,) in connection.execute(
                        f'select distinct "{name}" from {FEATURE_TABLE} '
                        f'where "{name}" is not null order by 1'
                    ).fetchall()
                ]
        labels = [spec.target] + ([spec.ranking_label] if spec.ranking_label else [])
        selected = ", ".join(
            f'"{name}"' for name in (*KEY_COLUMNS, *DISPLAY_COLUMNS, *labels, *spec.model_columns)
        )
        frame = connection.execute(
            f"select {selected} from {FEATURE_TABLE} order by year, round, driver_id"
        ).df()
    for name in spec.model_columns:
        if name in categories:
            # One fixed category set for the whole table, so every fold encodes alike.
            codes = pd.Categorical(frame[name], categories=categories[name]).codes
            frame[name] = np.where(codes < 0, np.nan, codes).astype("float64")
        else:
            numeric = pd.to_numeric(frame[name], errors="raise").astype("float64")
            frame[name] = quantise(numeric.to_numpy())
    return FeatureData(frame=frame, spec=spec, categories=categories, source=str(warehouse))
