"""The model recipes a training run compares: the served podium model, its ranking challenger
and the baselines both must beat. A recipe is a model factory plus the post-processing that
turns its raw output into probabilities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models_py.config import TrainConfig
from models_py.dataset import FeatureData
from models_py.modelling import (
    DEFAULT_LGBM_PARAMS,
    LightGBMModel,
    LightGBMRanker,
    LogisticModel,
    NaiveRuleModel,
    PodiumModel,
    RuleModel,
    split_scale_pos_weight,
)
from models_py.postprocessing import (
    RAW,
    PlackettLucePostProcessor,
    PostProcessor,
    ProbabilityPostProcessor,
)

PODIUM_MODEL = "lgbm"
RANKER = "lgbm_ranker"
NAIVE_BASELINE = "baseline_naive"
RULE_BASELINE = "baseline_rule"
SERVABLE = (PODIUM_MODEL, RANKER)


@dataclass(frozen=True)
class Candidate:
    name: str
    make: Callable[[], PodiumModel]
    postprocessor: Callable[[], PostProcessor]
    description: str

    @property
    def servable(self) -> bool:
        return self.name in SERVABLE


def baselines(config: TrainConfig, data: FeatureData) -> list[Candidate]:
    categorical = data.categorical
    normalised = ProbabilityPostProcessor(calibrate=False, normalise=True)
    return [
        Candidate(
            RULE_BASELINE, RuleModel, lambda: RAW, "driver_podium_rate_10 as the probability"
        ),
        Candidate(
            NAIVE_BASELINE,
            NaiveRuleModel,
            lambda: normalised,
            "½ team podium rate (5 races) + ½ driver podium rate (10), normalised per race",
        ),
        Candidate(
            "baseline_logistic",
            lambda: LogisticModel(
                numeric=list(data.spec.numeric), categorical=categorical, seed=config.seed
            ),
            lambda: RAW,
            "logistic regression, imputed and scaled",
        ),
        Candidate(
            "baseline_lgbm_default",
            lambda: LightGBMModel(
                categorical=categorical,
                seed=config.seed,
                threads=config.threads,
                hyperparameters={},
                scale_pos_weight=1.0,
                name="baseline_lgbm_default",
            ),
            lambda: RAW,
            "LightGBM, library default parameters",
        ),
    ]


def served_postprocessor(config: TrainConfig) -> ProbabilityPostProcessor:
    return ProbabilityPostProcessor(calibrate=config.calibrate, normalise=config.normalise)


def tree_params(hyperparameters: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    params, tuned_weight = split_scale_pos_weight(hyperparameters)
    if "subsample" in params:
        params.setdefault("subsample_freq", 1)
    return params, tuned_weight


def podium_candidate(
    config: TrainConfig, data: FeatureData, hyperparameters: dict[str, Any], origin: str
) -> Candidate:
    params, tuned_weight = tree_params(hyperparameters)
    weight = tuned_weight if tuned_weight is not None else config.scale_pos_weight
    postprocessor = served_postprocessor(config)

    def make() -> LightGBMModel:
        return LightGBMModel(
            categorical=data.categorical,
            seed=config.seed,
            threads=config.threads,
            hyperparameters=dict(params),
            scale_pos_weight=weight,
        )

    return Candidate(
        PODIUM_MODEL, make, lambda: postprocessor, f"LightGBM, {origin}; {postprocessor.describe()}"
    )


def ranker_candidate(
    config: TrainConfig, data: FeatureData, hyperparameters: dict[str, Any], origin: str
) -> Candidate:
    params, _ = tree_params(hyperparameters or DEFAULT_LGBM_PARAMS)

    def make() -> LightGBMRanker:
        return LightGBMRanker(
            categorical=data.categorical,
            seed=config.seed,
            threads=config.threads,
            hyperparameters=dict(params),
        )

    return Candidate(
        RANKER,
        make,
        PlackettLucePostProcessor,
        f"LightGBM lambdarank over finishing order, tree settings of {origin}; "
        "Plackett-Luce top-3 probabilities",
    )
