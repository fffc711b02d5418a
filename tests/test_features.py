"""The feature list declared in dbt agrees with the warehouse, and a mismatch is a clear error."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from models_py.features import (
    CANDIDATE_TABLE,
    FEATURE_TABLE,
    FeatureError,
    lineage_sha256,
    load_feature_spec,
    node_id,
    read_features,
)

pytestmark = pytest.mark.slow


def test_feature_list_comes_from_dbt_and_matches_the_tables(
    real_warehouse: Path, real_manifest: Path
) -> None:
    spec = load_feature_spec(real_manifest)
    assert spec.target == "podium"
    assert spec.ranking_label == "finish_position"
    features = spec.features()
    assert "driver_podium_rate_10" in features
    assert {"regulation_era", "circuit_type"} <= set(spec.categorical(features))
    # Keys, names and outcomes are not features.
    outcomes = {"race_id", "driver_id", "year", "driver_name", "podium", "finish_position"}
    assert not outcomes & set(spec.columns)
    assert "driver_podium_rate_10" in spec.group_features("base")
    assert "constructor_qualifying_gap_pct_3" in spec.group_features("qualifying_pace")
    # Candidates live in their own model, read only on request.
    candidates = {name for name, column in spec.columns.items() if not column.is_default}
    assert candidates == set(
        spec.group_features("identifiers", "practice_ungated", "team_lineage_off")
    )
    # The team features without the lineage name the feature each replaces, and only those.
    twins = spec.variants("team_lineage_off")
    assert twins and set(twins) <= set(features)
    assert all(twin == f"{name}_without_lineage" for name, twin in twins.items())
    assert "constructor_podium_rate_5" in twins and "driver_podium_rate_10" not in twins
    assert {spec.columns[name].table for name in candidates} == {CANDIDATE_TABLE}
    assert {spec.columns[name].table for name in features} == {FEATURE_TABLE}
    assert "driver_identifier" in spec.categorical(tuple(candidates))

    table = read_features(real_warehouse, spec, features)
    assert list(table.frame.columns[-len(features) :]) == list(features)
    numeric = [name for name in features if name not in spec.categorical(features)]
    assert all(table.frame[name].dtype == "float64" for name in numeric)
    assert not candidates & set(table.frame.columns)
    with_candidates = read_features(real_warehouse, spec, (*features, *sorted(candidates)))
    assert len(with_candidates.frame) == len(table.frame)
    assert with_candidates.frame["driver_identifier"].notna().all()
    eras = table.categories(features)["regulation_era"]
    assert eras == sorted(eras)
    with pytest.raises(FeatureError, match="declare no feature"):
        read_features(real_warehouse, spec, ("race_id",))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("alter table podium_features drop column grid_size", "has no column 'grid_size'"),
        (
            "alter table podium_features alter driver_podium_rate_10 type varchar",
            "driver_podium_rate_10 is VARCHAR, the dbt contract says DOUBLE",
        ),
        ("drop table podium_features", "has no table podium_features"),
        ("drop table podium_feature_candidates", "has no table podium_feature_candidates"),
    ],
)
def test_a_table_that_breaks_the_contract_is_refused(
    change: str, message: str, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.duckdb"
    shutil.copyfile(real_warehouse, broken)
    with duckdb.connect(str(broken)) as connection:
        connection.execute(change)
    with pytest.raises(FeatureError, match=message):
        read_features(broken, load_feature_spec(real_manifest))


def test_missing_manifest_or_warehouse_is_a_clear_error(
    real_manifest: Path, tmp_path: Path
) -> None:
    with pytest.raises(FeatureError, match="make build"):
        load_feature_spec(tmp_path / "manifest.json")
    with pytest.raises(FeatureError, match="no warehouse"):
        read_features(tmp_path / "missing.duckdb", load_feature_spec(real_manifest))


def test_feature_sql_hash_covers_upstream_models_seeds_and_macros(real_manifest: Path) -> None:
    manifest = json.loads(real_manifest.read_text())
    nodes = [node_id(FEATURE_TABLE), node_id(CANDIDATE_TABLE)]
    original = lineage_sha256(manifest, nodes)
    assert lineage_sha256(copy.deepcopy(manifest), nodes) == original

    edited_macro = copy.deepcopy(manifest)
    edited_macro["macros"]["macro.pitwall.lagged_mean"]["macro_sql"] += "\n-- edited"
    assert lineage_sha256(edited_macro, nodes) != original

    edited_seed = copy.deepcopy(manifest)
    edited_seed["nodes"]["seed.pitwall.status_categories"]["checksum"]["checksum"] = "0" * 64
    assert lineage_sha256(edited_seed, nodes) != original

    # A model that does not feed the features leaves the hash alone.
    unrelated = copy.deepcopy(manifest)
    unrelated["nodes"]["model.pitwall.predictions"]["checksum"]["checksum"] = "0" * 64
    assert lineage_sha256(unrelated, nodes) == original
