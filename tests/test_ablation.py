"""`python train.py ablation` measures each lever on the same folds and tables the result."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models_py.features import load_feature_spec
from tests.helpers import invoke, sqlite_uri

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ablation(real_warehouse: Path, real_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("ablation")
    completed = invoke(
        "ablation",
        real_warehouse,
        real_manifest,
        "--trials",
        "2",
        "--tracking-uri",
        sqlite_uri(folder),
        "--artifact-root",
        str(folder / "mlartifacts"),
    )
    assert completed.returncode == 0, completed.stderr
    mlflow.set_tracking_uri(sqlite_uri(folder))
    client = MlflowClient(sqlite_uri(folder))
    [parent] = client.search_runs(
        [client.get_experiment_by_name("pitwall-podium").experiment_id],
        "tags.`pitwall.role` = 'ablation'",
    )
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "ablation.csv", str(folder)))
    return completed.stdout, client, parent, table


def test_every_lever_is_one_step_in_order(ablation, real_manifest: Path) -> None:
    _, _, _, table = ablation
    spec = load_feature_spec(real_manifest)
    groups = list(dict.fromkeys(spec.columns[name].group for name in spec.features()))
    feature_steps = []
    for group in groups[1:]:
        if group == "practice":
            # The ungated variant is measured on the same base as the gated group it replaces.
            feature_steps.append("+ practice_ungated")
        feature_steps.append(f"+ {group}")
    expected = [
        "naive rule (reference)",
        "seed recipe",
        "no class weight",
        "calibration",
        "normalisation",
        "regularised defaults",
        *feature_steps,
        "+ identifiers",
        "tuned",
        *(["no team lineage"] if spec.variants("team_lineage_off") else []),
        "race-coherent challenger",
        "race model alone",
        "blend",
    ]
    assert groups[0] == "base" and "practice" in groups
    assert table["step"].tolist() == expected
    # The seed recipe uses issue 3's features only; each kept group adds its columns.
    steps = table.set_index("step")
    assert steps.loc["seed recipe", "features"] == len(spec.group_features("base"))
    assert steps.loc["race-coherent challenger", "features"] == len(spec.features())
    assert steps.loc["+ identifiers", "kept"] == "no (measured only)"
    # The race model and the blend run on the final recipe's features; the blend is kept.
    assert steps.loc["race model alone", "kept"] == "no (measured only)"
    assert steps.loc["blend", "kept"] == "yes"
    assert steps.loc["blend", "features"] == len(spec.features())
    assert 0 < steps.loc["blend", "cv_win_brier"] < 0.1
    # Gated and ungated practice are both measured against the step before practice.
    before = table["step"][table.index[table["step"] == "+ practice_ungated"][0] - 1]
    for step in ("+ practice_ungated", "+ practice"):
        change = steps.loc[step, "cv_brier"] - steps.loc[before, "cv_brier"]
        assert steps.loc[step, "delta_brier"] == pytest.approx(change, abs=1e-12)
    # The Brier by weekend type (one practice session before qualifying, or several).
    assert {"brier_one_session", "brier_several_sessions"} <= set(table.columns)


def test_each_step_reports_its_change_against_the_step_before(ablation) -> None:
    _, _, _, table = ablation
    steps = table.set_index("step")
    kept_before = {"no class weight": "seed recipe", "calibration": "no class weight"}
    for step, previous in kept_before.items():
        change = steps.loc[step, "cv_brier"] - steps.loc[previous, "cv_brier"]
        assert steps.loc[step, "delta_brier"] == pytest.approx(change, abs=1e-12)
    # A measured-only step is compared with the last kept step, and is not built upon.
    identifiers = steps.loc["+ identifiers"]
    last_group = table["step"][table.index[table["step"] == "+ identifiers"][0] - 1]
    change = identifiers["cv_brier"] - steps.loc[last_group, "cv_brier"]
    assert identifiers["delta_brier"] == pytest.approx(change, abs=1e-12)
    rows = table[table["step"] != "naive rule (reference)"]
    assert rows["folds_improved"].dropna().between(0, 2).all()
    assert rows["folds_beating_naive"].between(0, 2).all()
    # Class weighting inflates probabilities: removing it must lower the Brier here too.
    assert steps.loc["no class weight", "delta_brier"] < 0


def test_one_nested_run_per_step_and_the_summary_artifacts(ablation) -> None:
    stdout, client, parent, table = ablation
    experiment = client.get_experiment_by_name("pitwall-podium").experiment_id
    children = [
        run
        for run in client.search_runs([experiment])
        if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        and run.data.params.get("step")
    ]
    assert sorted(run.data.params["step"] for run in children) == sorted(
        table["step"].iloc[1:].tolist()
    )
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"ablation.csv", "ablation.md", "plots"} <= artifacts
    assert "| step | lever |" in mlflow.artifacts.load_text(
        f"runs:/{parent.info.run_id}/ablation.md"
    )
    assert "race-coherent challenger" in stdout
