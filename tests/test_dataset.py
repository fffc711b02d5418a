"""The feature list declared in dbt agrees with the warehouse, and a mismatch is a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from models_py.dataset import DatasetError, load_feature_spec, read_features

pytestmark = pytest.mark.slow


def test_feature_list_comes_from_dbt_and_matches_the_table(
    real_warehouse: Path, real_manifest: Path
) -> None:
    spec = load_feature_spec(real_manifest)
    assert spec.target == "podium"
    assert spec.ranking_label == "finish_position"
    assert {"regulation_era", "circuit_type"} <= set(spec.categorical)
    assert "driver_podium_rate_10" in spec.features
    # Keys, names and outcomes are not features.
    outcomes = {"race_id", "driver_id", "year", "driver_name", "podium", "finish_position"}
    assert not outcomes & set(spec.model_columns)
    # Every feature belongs to an ablation group; candidates are read but not used by default.
    assert set(spec.groups) == set(spec.model_columns)
    assert "driver_podium_rate_10" in spec.group_features("base")
    assert "constructor_qualifying_gap_pct_3" in spec.group_features("qualifying_pace")
    candidates = set(spec.model_columns) - set(spec.features)
    assert candidates == set(spec.group_features("identifiers", "practice_ungated"))
    assert "practice_best_gap_pct" in spec.group_features("practice")
    assert "driver_ref" in candidates and "driver_ref" in spec.categorical

    with duckdb.connect(str(real_warehouse), read_only=True) as connection:
        columns = {
            name
            for (name,) in connection.execute(
                "select column_name from information_schema.columns "
                "where table_name = 'podium_features'"
            ).fetchall()
        }
    assert set(spec.features) <= columns

    data = read_features(real_warehouse, spec)
    assert list(data.frame.columns[-len(spec.model_columns) :]) == list(spec.model_columns)
    assert all(data.frame[name].dtype == "float64" for name in spec.model_columns)
    # Features hold float32 values, as the ONNX model will see them.
    numeric = data.frame[list(spec.numeric)].to_numpy()
    assert ((numeric.astype("float32").astype("float64") == numeric) | (numeric != numeric)).all()
    assert data.categorical == ["regulation_era", "circuit_type"]
    subset = data.with_features(["driver_podium_rate_10", "driver_ref"])
    assert subset.features == ["driver_podium_rate_10", "driver_ref"]
    assert subset.categorical == ["driver_ref"]
    with pytest.raises(DatasetError, match="declares no feature"):
        data.with_features(["race_id"])
    # One fixed category set from the whole table: codes are positions in it.
    eras = data.categories["regulation_era"]
    assert eras == sorted(eras)
    assert data.frame["regulation_era"].max() == len(eras) - 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("alter table podium_features drop column grid_size", "has no column 'grid_size'"),
        (
            "alter table podium_features alter driver_podium_rate_10 type varchar",
            "driver_podium_rate_10 is VARCHAR, the dbt contract says DOUBLE",
        ),
        ("drop table podium_features", "has no table podium_features"),
    ],
)
def test_a_table_that_breaks_the_contract_is_refused(
    change: str, message: str, real_warehouse: Path, real_manifest: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.duckdb"
    shutil.copyfile(real_warehouse, broken)
    with duckdb.connect(str(broken)) as connection:
        connection.execute(change)
    with pytest.raises(DatasetError, match=message):
        read_features(broken, load_feature_spec(real_manifest))


def test_missing_manifest_or_warehouse_is_a_clear_error(
    real_manifest: Path, tmp_path: Path
) -> None:
    with pytest.raises(DatasetError, match="make build"):
        load_feature_spec(tmp_path / "manifest.json")
    with pytest.raises(DatasetError, match="no warehouse"):
        read_features(tmp_path / "missing.duckdb", load_feature_spec(real_manifest))


def test_feature_sql_hash_covers_upstream_models_seeds_and_macros(real_manifest: Path) -> None:
    import copy
    import json

    from models_py.dataset import MODEL_NODE, lineage_sha256

    manifest = json.loads(real_manifest.read_text())
    original = lineage_sha256(manifest, MODEL_NODE)
    assert lineage_sha256(copy.deepcopy(manifest), MODEL_NODE) == original

    edited_macro = copy.deepcopy(manifest)
    edited_macro["macros"]["macro.pitwall.lagged_mean"]["macro_sql"] += "\n-- edited"
    assert lineage_sha256(edited_macro, MODEL_NODE) != original

    edited_seed = copy.deepcopy(manifest)
    edited_seed["nodes"]["seed.pitwall.status_categories"]["checksum"]["checksum"] = "0" * 64
    assert lineage_sha256(edited_seed, MODEL_NODE) != original

    # A model that does not feed the features leaves the hash alone.
    unrelated = copy.deepcopy(manifest)
    unrelated["nodes"]["model.pitwall.predictions"]["checksum"]["checksum"] = "0" * 64
    assert lineage_sha256(unrelated, MODEL_NODE) == original
