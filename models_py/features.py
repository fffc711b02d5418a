"""Read the feature table from the warehouse, read-only, with the feature list dbt declares.

The feature list lives in one place: the `meta` of the model columns in the dbt YAML of
`podium_features` (the analysts' contract) and of `podium_feature_candidates` (measured
candidates only the ablation reads), which dbt writes into `target/manifest.json`:
`feature` (the default model's inputs), `feature_group` (the lever a column belongs to),
`categorical`, `moment` (`post_qualifying`: known only once qualifying is over), `target` and
`ranking_label`. This module reads them, checks the tables against them (every column present
with its contract type) and selects rows with SQL. Nothing here computes a feature.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pandas as pd

from models_py.settings import EXIT_BUSY

FEATURE_TABLE = "podium_features"
CANDIDATE_TABLE = "podium_feature_candidates"
KEY_COLUMNS = ("race_id", "driver_id", "constructor_id", "year", "round", "is_upcoming")
DISPLAY_COLUMNS = ("driver_name", "constructor_name")
# Read too where the table has them (older warehouses may not): what a stored forecast records.
DESCRIPTIVE_COLUMNS = (
    "driver_ref",
    "constructor_ref",
    "race_name",
    "entrant_source",
    "official_standings_source",
)
PRE_QUALIFYING = "pre_qualifying"
POST_QUALIFYING = "post_qualifying"
MOMENTS = (PRE_QUALIFYING, POST_QUALIFYING)
UNGROUPED = "ungrouped"

# Contract types as dbt writes them → DuckDB's information_schema spelling.
DUCKDB_TYPES = {
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "varchar": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
}


class FeatureError(RuntimeError):
    """The warehouse or the dbt manifest is not what a command needs; the message says what."""


class WarehouseBusyError(RuntimeError):
    """Another process has the warehouse open for writing, so DuckDB lets no one else open it,
    not even to read: nothing was read. Commands exit 3 (busy) on it."""

    exit_code = EXIT_BUSY


@dataclass(frozen=True)
class ModelColumn:
    name: str
    table: str
    group: str
    is_default: bool
    categorical: bool
    moment: str
    sql_type: str
    # A candidate computed another way in place of a feature (e.g. without the team lineage),
    # for the ablation to swap in.
    variant_of: str | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """Every column a model may use, in YAML order, with the target and the ranking label."""

    columns: dict[str, ModelColumn]
    target: str
    ranking_label: str | None
    sql_sha256: str
    column_types: dict[str, str]

    def features(self, moment: str = PRE_QUALIFYING) -> tuple[str, ...]:
        """The default model's inputs at a moment: post-qualifying adds the qualifying columns."""
        allowed = MOMENTS[: MOMENTS.index(moment) + 1]
        return tuple(
            column.name
            for column in self.columns.values()
            if column.is_default and column.moment in allowed
        )

    def variants(self, group: str) -> dict[str, str]:
        """Feature → the candidate of `group` that computes it another way (`meta.variant_of`)."""
        return {
            column.variant_of: name
            for name, column in self.columns.items()
            if column.group == group and column.variant_of
        }

    def group_features(self, *groups: str) -> tuple[str, ...]:
        return tuple(name for name, column in self.columns.items() if column.group in groups)

    def categorical(self, features: tuple[str, ...] | list[str]) -> list[str]:
        return [name for name in features if self.columns[name].categorical]

    def check(self, features: tuple[str, ...] | list[str]) -> None:
        unknown = [name for name in features if name not in self.columns]
        if unknown:
            raise FeatureError(f"{FEATURE_TABLE} and its candidates declare no feature {unknown}")


def lineage_sha256(manifest: dict, node_ids: list[str]) -> str:
    """A hash of the SQL, seeds and macros that define the given models and their parents.

    dbt's per-file checksums do not depend on where the warehouse lives (compiled SQL embeds the
    database name), so the same feature definitions give the same hash on every machine, and a
    change to any upstream model or seed changes it.
    """
    parents = manifest.get("parent_map", {})
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    seen: set[str] = set()
    frontier = list(node_ids)
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


def node_id(table: str) -> str:
    return f"model.pitwall.{table}"


def load_feature_spec(manifest_path: Path) -> FeatureSpec:
    if not manifest_path.exists():
        raise FeatureError(
            f"dbt manifest not found at {manifest_path}: build the warehouse first (make build)"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    nodes = manifest.get("nodes", {})
    if node_id(FEATURE_TABLE) not in nodes:
        raise FeatureError(f"{manifest_path} has no model {FEATURE_TABLE}")
    columns: dict[str, ModelColumn] = {}
    column_types: dict[str, str] = {}
    targets: list[str] = []
    ranking_labels: list[str] = []
    tables = [table for table in (FEATURE_TABLE, CANDIDATE_TABLE) if node_id(table) in nodes]
    for table in tables:
        for name, column in nodes[node_id(table)]["columns"].items():
            meta = column.get("config", {}).get("meta") or column.get("meta") or {}
            sql_type = (column.get("data_type") or "").lower()
            if table == FEATURE_TABLE:
                column_types[name] = sql_type
            if meta.get("feature") or meta.get("feature_group"):
                columns[name] = ModelColumn(
                    name=name,
                    table=table,
                    group=meta.get("feature_group") or UNGROUPED,
                    is_default=bool(meta.get("feature")),
                    categorical=bool(meta.get("categorical")),
                    moment=meta.get("moment") or PRE_QUALIFYING,
                    sql_type=sql_type,
                    variant_of=meta.get("variant_of"),
                )
            if meta.get("target"):
                targets.append(name)
            if meta.get("ranking_label"):
                ranking_labels.append(name)
    if not any(column.is_default for column in columns.values()):
        raise FeatureError(f"{FEATURE_TABLE} in {manifest_path} declares no meta.feature column")
    if len(targets) != 1:
        raise FeatureError(f"{FEATURE_TABLE} must declare exactly one meta.target column")
    if len(ranking_labels) > 1:
        raise FeatureError(f"{FEATURE_TABLE} declares more than one meta.ranking_label column")
    bad_moments = [c.name for c in columns.values() if c.moment not in MOMENTS]
    if bad_moments:
        raise FeatureError(f"meta.moment must be one of {MOMENTS}: {bad_moments}")
    return FeatureSpec(
        columns=columns,
        target=targets[0],
        ranking_label=ranking_labels[0] if ranking_labels else None,
        sql_sha256=lineage_sha256(manifest, [node_id(table) for table in tables]),
        column_types=column_types,
    )


@dataclass(frozen=True)
class FeatureTable:
    """Rows of the feature table: numeric model columns as float64, categorical as text."""

    frame: pd.DataFrame
    spec: FeatureSpec
    source: str

    @property
    def past(self) -> pd.DataFrame:
        """Rows of races that have results (the upcoming race's rows excluded)."""
        return self.frame[~self.frame["is_upcoming"]]

    @property
    def upcoming(self) -> pd.DataFrame:
        return self.frame[self.frame["is_upcoming"]]

    @property
    def seasons_with_results(self) -> list[int]:
        return sorted(self.past["year"].unique().tolist())

    def categories(self, features: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
        """One fixed category list per categorical feature: the table's sorted values."""
        return {
            name: sorted(self.frame[name].dropna().unique().tolist())
            for name in self.spec.categorical(features)
        }

    def with_frame(self, frame: pd.DataFrame) -> FeatureTable:
        return replace(self, frame=frame)


def check_tables(connection: duckdb.DuckDBPyConnection, spec: FeatureSpec, where: Path) -> None:
    for table in dict.fromkeys([FEATURE_TABLE, *(c.table for c in spec.columns.values())]):
        actual = dict(
            connection.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = ?",
                [table],
            ).fetchall()
        )
        if not actual:
            raise FeatureError(
                f"{where} has no table {table}: run `make build` (dbt) before training"
            )
        needed = {
            name: column.sql_type for name, column in spec.columns.items() if column.table == table
        }
        if table == FEATURE_TABLE:
            labels = [spec.target, *([spec.ranking_label] if spec.ranking_label else [])]
            needed = {
                **{name: spec.column_types.get(name, "") for name in (*KEY_COLUMNS, *labels)},
                **needed,
            }
        for name, sql_type in needed.items():
            if name not in actual:
                raise FeatureError(f"{where}: {table} has no column {name!r}")
            expected = DUCKDB_TYPES.get(sql_type)
            if expected and actual[name] != expected:
                raise FeatureError(
                    f"{where}: {table}.{name} is {actual[name]}, the dbt contract says {expected}"
                )


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse; WarehouseBusyError, naming the program and PID
    that hold it, when another process has it open for writing (DuckDB's file lock)."""
    try:
        return duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException as error:
        if "could not set lock" not in str(error).lower():
            raise
        holder = re.search(r"Conflicting lock is held in (.+?\(PID \d+\))", str(error))
        raise WarehouseBusyError(
            f"{warehouse} is in use by {holder.group(1) if holder else 'another process'}, "
            "which has it open for writing: close that program (a DuckDB CLI session counts) "
            "and run again"
        ) from error


def read_features(
    warehouse: Path,
    spec: FeatureSpec,
    features: tuple[str, ...] | list[str] | None = None,
    where: str | None = None,
) -> FeatureTable:
    """Keys, names, labels and the requested model columns (default: every default feature of
    both moments), typed in SQL: numeric as double, categorical as text. `where` filters rows
    (a SQL predicate over the feature table's columns, written by this package, never by users).
    """
    if not warehouse.exists():
        raise FeatureError(f"no warehouse at {warehouse}: run `make setup` or `make build` first")
    features = tuple(features) if features is not None else spec.features(POST_QUALIFYING)
    spec.check(features)
    labels = [spec.target, *([spec.ranking_label] if spec.ranking_label else [])]
    with connect_read_only(warehouse) as connection:
        check_tables(connection, spec, warehouse)
        present = {
            name
            for (name,) in connection.execute(
                "select column_name from information_schema.columns where table_name = ?",
                [FEATURE_TABLE],
            ).fetchall()
        }
        descriptive = [name for name in DESCRIPTIVE_COLUMNS if name in present]
        selected = [
            f"f.{quoted(name)}" for name in (*KEY_COLUMNS, *DISPLAY_COLUMNS, *descriptive, *labels)
        ]
        for name in features:
            column = spec.columns[name]
            alias = "f" if column.table == FEATURE_TABLE else "c"
            sql_type = "varchar" if column.categorical else "double"
            selected.append(f"cast({alias}.{quoted(name)} as {sql_type}) as {quoted(name)}")
        joins = ""
        if any(spec.columns[name].table == CANDIDATE_TABLE for name in features):
            joins = f" left join {CANDIDATE_TABLE} as c using (race_id, driver_id)"
        frame = connection.execute(
            f"select {', '.join(selected)} from {FEATURE_TABLE} as f{joins}"
            + (f" where {where}" if where else "")
            + " order by f.year, f.round, f.driver_id"
        ).df()
    return FeatureTable(frame=frame, spec=spec, source=str(warehouse))
