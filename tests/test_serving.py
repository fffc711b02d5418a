"""The served model: the ONNX graph agrees with the booster, the pyfunc serves the metrics'
probabilities, and registration moves aliases one complete step at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models_py import serving
from models_py.models import (
    DATASET_PARAMS,
    LightGBMModel,
    Recipe,
    TrainingRows,
    float32_thresholds,
    lightgbm_params,
    model_matrix,
)
from models_py.probability import PostProcessing


def categorical_problem(rows: int = 3000, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    generator = np.random.default_rng(seed)
    # The label depends on a non-ordinal set of category codes, so only categorical splits
    # (LightGBM's "==" decisions over a category set) can express it.
    category = generator.integers(0, 12, rows).astype(float)
    rate = generator.random(rows)
    rate[generator.random(rows) < 0.1] = np.nan
    logit = np.where(np.isin(category, [1, 4, 7, 10]), 1.5, -1.5) + 2 * np.nan_to_num(rate, nan=0.5)
    target = (generator.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"team_code": category, "rate": rate}), target


def fitted(matrix: pd.DataFrame, target: np.ndarray, seed: int = 1, **params) -> LightGBMModel:
    rows = TrainingRows(matrix, target, np.arange(len(target)) // 10)
    features = tuple(matrix.columns)
    categorical = [name for name in features if name == "team_code"]
    model = LightGBMModel(features, categorical, {"n_estimators": 60, **params}, seed, 1)
    return model.fit(rows)


@pytest.fixture(scope="module")
def model() -> LightGBMModel:
    return fitted(*categorical_problem())


def categorical_split_count(model: LightGBMModel) -> int:
    def walk(node: dict) -> int:
        if "split_index" not in node:
            return 0
        own = 1 if node.get("decision_type") == "==" else 0
        return own + walk(node["left_child"]) + walk(node["right_child"])

    assert model.booster is not None
    return sum(walk(tree["tree_structure"]) for tree in model.booster.dump_model()["tree_info"])


def test_categorical_splits_and_missing_values_survive_conversion(model: LightGBMModel) -> None:
    assert categorical_split_count(model) > 0
    features, _ = categorical_problem(500, seed=8)
    # Unseen category codes and missing values, too.
    features.loc[:20, "team_code"] = 99.0
    features.loc[21:40, "team_code"] = np.nan
    converted = serving.to_onnx(model.booster, 2)
    assert serving.check_parity(converted, model.booster, features.to_numpy()) <= 1e-6


def test_parity_failure_is_a_clear_error(model: LightGBMModel) -> None:
    features, target = categorical_problem(500)
    other = fitted(features, target, seed=2, scale_pos_weight=5.0)
    # A graph converted from another booster cannot match this one.
    with pytest.raises(serving.ParityError, match="not registering"):
        serving.check_parity(serving.to_onnx(other.booster, 2), model.booster, features.to_numpy())


def test_thresholds_between_adjacent_float32_values_agree_with_onnx() -> None:
    # Two training values one float32 step apart: LightGBM splits at their float64 midpoint,
    # which float32 rounding (ties to even) moves onto the upper value.
    lower = np.nextafter(np.float32(1.0), np.float32(2.0))
    upper = np.nextafter(lower, np.float32(2.0))
    generator = np.random.default_rng(3)
    values = np.where(generator.random(2000) < 0.5, lower, upper).astype(np.float64)
    target = ((values == upper) ^ (generator.random(2000) < 0.1)).astype(int)
    features = pd.DataFrame({"pace": values})
    params = {"n_estimators": 5, "min_child_samples": 5, "learning_rate": 0.5}
    model = fitted(features, target, **params)
    raw = lgb.train(
        lightgbm_params(params, 1, 1)[0],
        lgb.Dataset(features, label=target, params=DATASET_PARAMS),
        num_boost_round=5,
    )
    matrix = features.to_numpy()
    # The untouched booster disagrees with its own ONNX conversion on the upper value...
    with pytest.raises(serving.ParityError):
        serving.check_parity(serving.to_onnx(raw, 1), raw, matrix)
    # ...the float32-safe one agrees, and predicts exactly what the untouched one does.
    assert np.array_equal(model.booster.predict(matrix), raw.predict(matrix))
    assert serving.check_parity(serving.to_onnx(model.booster, 1), model.booster, matrix) <= 1e-6
    # Applying it twice changes nothing: every threshold is already a float32.
    assert float32_thresholds(model.booster).model_to_string() == model.booster.model_to_string()


def test_model_matrix_encodes_categories_and_puts_numbers_on_the_float32_grid() -> None:
    frame = pd.DataFrame({"era": ["b", "a", None, "z"], "rate": [0.123456789, 1 / 3, np.nan, 2.0]})
    matrix = model_matrix(frame, ("era", "rate"), {"era": ["a", "b"]})
    assert matrix["era"].tolist()[:2] == [1.0, 0.0]
    # Missing and unknown categories are missing values, never a new code.
    assert np.isnan(matrix["era"].iloc[2]) and np.isnan(matrix["era"].iloc[3])
    rate = matrix["rate"].to_numpy()
    assert rate[0] == np.float32(0.1235) and np.isnan(rate[2])
    assert (
        rate[~np.isnan(rate)].astype(np.float32).astype(np.float64) == rate[~np.isnan(rate)]
    ).all()


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("serving")
    return uri


def served_rows() -> tuple[pd.DataFrame, Recipe, dict, LightGBMModel]:
    generator = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "race_id": np.repeat(np.arange(30), 10),
            "era": generator.choice(["a", "b", "c"], 300),
            "pace": generator.normal(size=300),
        }
    )
    target = (frame["pace"] + generator.normal(size=300) > 1).astype(int).to_numpy()
    categories = {"era": ["a", "b", "c"]}
    recipe = Recipe("lgbm", "lightgbm", ("era", "pace"), {"n_estimators": 20})
    matrix = model_matrix(frame, recipe.features, categories)
    model = LightGBMModel(recipe.features, ["era"], recipe.params, 1, 1)
    model.fit(TrainingRows(matrix, target, frame["race_id"].to_numpy()))
    return frame, recipe, categories, model


def test_the_logged_pyfunc_serves_exactly_the_probabilities_it_was_checked_on(store) -> None:
    frame, recipe, categories, model = served_rows()
    postprocessor = PostProcessing(calibrate=False, normalise=True)
    raw = model.score(model_matrix(frame, recipe.features, categories))
    expected = serving.served_frame(postprocessor, frame["race_id"].to_numpy(), raw)
    with mlflow.start_run():
        uri, difference = serving.log_served_model(
            "model", model.booster, recipe, categories, postprocessor, frame, expected
        )
    assert difference <= 1e-6
    loaded = mlflow.pyfunc.load_model(uri)
    assert serving.model_features(loaded) == ["era", "pace"]
    served = loaded.predict(serving.served_input(frame, recipe.features))
    np.testing.assert_allclose(served, expected, atol=1e-6)
    sums = served.groupby(frame["race_id"]).sum()
    assert np.allclose(sums["podium_probability"], 3.0)
    # LightGBM alone reads P(win) and P(points) off P(podium): each race sums to 1 and to 10.
    assert np.allclose(sums["win_probability"], 1.0)
    assert np.allclose(sums["points_probability"], 10.0)
    # Any feature may be missing on the day; the race id may not.
    gaps = frame.assign(era=None, pace=np.nan)
    served_gaps = loaded.predict(serving.served_input(gaps, recipe.features))
    assert np.isfinite(served_gaps.to_numpy()).all()
    with pytest.raises(Exception, match="race_id"):
        loaded.predict(frame[["era", "pace"]])


def test_a_model_that_does_not_serve_its_metrics_is_never_logged(store) -> None:
    frame, recipe, categories, model = served_rows()
    wrong = pd.DataFrame({column: np.full(len(frame), 0.3) for column in serving.OUTPUT_COLUMNS})
    with mlflow.start_run(), pytest.raises(serving.ParityError, match="not registering"):
        serving.log_served_model(
            "model", model.booster, recipe, categories, PostProcessing(False, True), frame, wrong
        )


class Interrupting(MlflowClient):
    """A registry client whose champion move is interrupted, as Ctrl-C would."""

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        if alias == serving.CHAMPION and str(version) != "1":
            raise KeyboardInterrupt
        super().set_registered_model_alias(name, alias, version)


def two_logged_models() -> tuple[pd.DataFrame, Recipe, list[str]]:
    """The same served model logged in two runs, ready to register: its rows, recipe, URIs."""
    frame, recipe, categories, model = served_rows()
    postprocessor = PostProcessing(calibrate=False, normalise=True)
    expected = serving.served_frame(
        postprocessor,
        frame["race_id"].to_numpy(),
        model.score(model_matrix(frame, recipe.features, categories)),
    )
    uris = []
    for _ in range(2):
        with mlflow.start_run():
            uris.append(
                serving.log_served_model(
                    "model", model.booster, recipe, categories, postprocessor, frame, expected
                )[0]
            )
    return frame, recipe, uris


def test_an_interrupted_registration_leaves_every_alias_on_a_complete_version(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame, recipe, uris = two_logged_models()
    first = serving.register(
        "podium-test", uris[0], lambda champion: serving.decide(0.1, champion, None), {}
    )
    assert first.decision.promoted
    monkeypatch.setattr(serving, "MlflowClient", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        serving.register(
            "podium-test", uris[1], lambda current: serving.decide(0.05, current, 0.1), {}
        )
    client = MlflowClient()
    # The champion never moved, and still serves; the new version exists, fully tagged.
    assert str(client.get_model_version_by_alias("podium-test", serving.CHAMPION).version) == "1"
    assert client.get_model_version("podium-test", "2").tags["promoted"] == "true"
    served = mlflow.pyfunc.load_model("models:/podium-test@champion")
    assert len(served.predict(serving.served_input(frame, recipe.features))) == len(frame)


def test_concurrent_registrations_decide_in_version_order(store) -> None:
    """Two trainings registering at once: the later version decides only after the earlier one
    moved its aliases, against the champion it left; the champion moves once."""
    _, _, uris = two_logged_models()
    first_deciding, release = threading.Event(), threading.Event()
    compared: dict[str, object] = {}

    def slow_first(champion: object) -> serving.Decision:
        compared["first"] = champion
        first_deciding.set()
        release.wait(timeout=30)  # a re-scoring that takes a while
        return serving.decide(0.08, champion, None)

    def second(champion: object) -> serving.Decision:
        compared["second"] = champion
        # The same holdout Brier as the first: not better, so no second move.
        return serving.decide(0.08, champion, 0.08)

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(serving.register, "podium-race", uris[0], slow_first, {})
        assert first_deciding.wait(timeout=30)
        two = pool.submit(serving.register, "podium-race", uris[1], second, {})
        time.sleep(2)
        assert "second" not in compared  # waiting for version 1's decision
        release.set()
        registrations = [one.result(timeout=60), two.result(timeout=60)]

    assert compared["first"] is None
    assert str(compared["second"].version) == "1"
    assert [r.decision.promoted for r in registrations] == [True, False]
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("podium-race", serving.CHAMPION).version) == "1"
    for version in ("1", "2"):
        assert client.get_model_version("podium-race", version).tags[serving.DECIDED_TAG] == "true"


@pytest.mark.parametrize(
    ("champion_brier", "promoted"), [(None, False), (0.09, True), (0.07, False)]
)
def test_decide_promotes_only_on_a_better_rescored_brier(champion_brier, promoted) -> None:
    class Version:
        version = "4"

    assert serving.decide(0.08, None, None).promoted
    decision = serving.decide(0.08, Version(), champion_brier, "trained on it")
    assert decision.promoted is promoted
    if champion_brier is None:
        assert decision.reason == "trained on it"
