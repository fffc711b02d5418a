"""Hand-made feature tables for the fast tests: races where a hidden skill decides the order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models_py.features import PRE_QUALIFYING, FeatureSpec, FeatureTable, ModelColumn

DRIVERS = 8
RACES_PER_SEASON = 12


def synthetic_table(first: int = 1995, last: int = 2010, seed: int = 3) -> FeatureTable:
    """`pace` is a noisy view of each race's hidden skill; `team` a categorical code."""
    generator = np.random.default_rng(seed)
    rows = []
    for year in range(first, last + 1):
        for round_ in range(1, RACES_PER_SEASON + 1):
            race_id = year * 100 + round_
            skill = generator.normal(size=DRIVERS)
            order = np.argsort(-(skill + generator.normal(scale=0.8, size=DRIVERS)))
            finish = np.empty(DRIVERS, dtype=int)
            finish[order] = np.arange(1, DRIVERS + 1)
            for driver in range(DRIVERS):
                rows.append(
                    {
                        "race_id": race_id,
                        "driver_id": driver,
                        "constructor_id": driver // 2,
                        "year": year,
                        "round": round_,
                        "is_upcoming": False,
                        "driver_name": f"driver {driver}",
                        "constructor_name": f"team {driver // 2}",
                        "podium": int(finish[driver] <= 3),
                        "finish_position": finish[driver],
                        "pace": skill[driver] + generator.normal(scale=0.3),
                        "team": f"team {driver // 2}",
                    }
                )
    columns = {
        "pace": ModelColumn(
            "pace", "podium_features", "base", True, False, PRE_QUALIFYING, "double"
        ),
        "team": ModelColumn(
            "team", "podium_features", "base", True, True, PRE_QUALIFYING, "varchar"
        ),
    }
    spec = FeatureSpec(
        columns=columns,
        target="podium",
        ranking_label="finish_position",
        sql_sha256="synthetic",
        column_types={},
    )
    return FeatureTable(frame=pd.DataFrame(rows), spec=spec, source="synthetic")
