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
    assert set(spec.categorical) == {"regulation_era", "circuit_type"}
    assert "driver_podium_rate_10" in spec.features
    # Keys, names and the target are not features.
    assert not {"race_id", "driver_id", "year", "driver_name", "podium"} & set(spec.features)

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
    assert list(data.frame.columns[-len(spec.features) :]) == list(spec.features)
    assert all(data.frame[name].dtype == "float64" for name in spec.features)
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
