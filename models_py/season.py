"""The weekly loop through a live season: `predict`, `refit` and `replay`.

- `predict` scores the upcoming race (or any race) at a moment with the registered champion
  and appends the forecast to the predictions store, with its moment, model version, entrant
  source and data versions.
- `refit` refits the champion's recipe (features, parameters, post-processing) on the latest
  seasons up to the last race with results, and registers it as what the alias serves.
- `replay` walks the loop race by race through a past season: for each race, the serving
  refit as of the race before and the frozen model of the season's start, at both moments,
  stored like live forecasts with a replay label, so `prediction_scorecard` scores them.
"""

from __future__ import annotations

import functools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import mlflow
import pandas as pd

from models_py import serving, tracking
from models_py.evaluation import CrossValidation, ServingRefit, metrics, outcome_metrics
from models_py.features import (
    FEATURE_TABLE,
    POST_QUALIFYING,
    FeatureError,
    FeatureTable,
    load_feature_spec,
    read_features,
)
from models_py.models import GRID_SLOT_BASELINE, Recipe, baseline_recipes, model_matrix
from models_py.settings import Locations
from models_py.training import (
    BadInput,
    log_served,
    parity_rows,
    registered_name,
    serving_target,
)

ROW_COLUMNS = [
    "race_id",
    "year",
    "round",
    "driver_id",
    "constructor_id",
    "driver_ref",
    "constructor_ref",
    "driver_name",
    "constructor_name",
    "entrant_source",
]
ENTRANT_WARNING = (
    "warning: the entrants are the previous race's driver-team pairs (no qualifying "
    "classification or entry list yet): add entries/{year}.csv if the field changes"
)


def forecast_rows(
    rows: pd.DataFrame,
    probabilities: pd.DataFrame,
    moment: str,
    model_name: str,
    version: str,
    alias: str,
    versions: dict[str, str],
    replay: str | None = None,
    replay_id: str | None = None,
) -> pd.DataFrame:
    """One forecast as the store keeps it: who, how likely (`serving.OUTPUT_COLUMNS`), and where
    it came from."""
    present = [column for column in ROW_COLUMNS if column in rows]
    return (
        rows[present]
        .reset_index(drop=True)
        .assign(
            forecast_id=uuid.uuid4().hex,
            predicted_at=pd.Timestamp(datetime.now(UTC)),
            moment=moment,
            **{column: probabilities[column].to_numpy() for column in serving.OUTPUT_COLUMNS},
            model_name=model_name,
            model_version=version,
            model_alias=alias,
            data_version=versions.get("data_version", "unknown"),
            practice_data_version=versions.get("practice_data_version", "unknown"),
            replay=replay,
            replay_id=replay_id,
            **{column: None for column in ROW_COLUMNS if column not in rows},
        )
    )


def has_qualifying(rows: pd.DataFrame) -> bool:
    return "qualifying_position" in rows and rows["qualifying_position"].notna().any()


def predict(
    locations: Locations, model_name: str, alias: str, race_id: int | None, moment: str
) -> None:
    tracking.connect(locations)
    name = registered_name(model_name, moment)
    spec = load_feature_spec(locations.dbt_manifest)
    where = f"f.race_id = {int(race_id)}" if race_id is not None else "f.is_upcoming"
    # Every default feature of the race, read once and before the model is loaded: a wrong race
    # fails in a moment. A served model trains on default features only.
    rows = read_features(locations.warehouse, spec, where=where).frame
    if rows.empty:
        raise BadInput(
            f"race {race_id} is not in podium_features"
            if race_id is not None
            else "no upcoming race in the data: every scheduled race has results"
        )
    first = rows.iloc[0]
    race = f"{first['year']} round {first['round']}"
    if moment == POST_QUALIFYING and not has_qualifying(rows):
        raise BadInput(
            f"{race} has no qualifying classification yet: run `make refresh` once it is "
            "published, or predict the pre-qualifying moment"
        )
    model, version = serving.load_served(name, alias)
    features = serving.model_features(model)
    missing = [name for name in features if name not in rows]
    if missing:
        raise FeatureError(f"{name} v{version.version} needs {missing}, not in {FEATURE_TABLE}")
    forecast = forecast_rows(
        rows,
        serving.served_probabilities(model, rows),
        moment,
        name,
        str(version.version),
        alias,
        tracking.data_versions(locations.warehouse),
    )
    path = serving.write_forecast(locations.predictions_dir, forecast)
    source = first.get("entrant_source") or "unknown"
    print(
        f"{race}{', ' + str(first['race_name']) if 'race_name' in rows else ''} "
        f"(race {first['race_id']}) · {moment.replace('_', '-')} · {name} v{version.version} "
        f"(@{alias}) · entrants from {source}:"
    )
    if source == "last_race":
        print(ENTRANT_WARNING.format(year=first["year"]))
    print(forecast_table(forecast))
    print(
        f"stored in {path}; in the warehouse: `select * from predictions` (live), "
        "`latest_predictions`, `prediction_scorecard` once the race has run"
    )


def forecast_table(forecast: pd.DataFrame) -> str:
    """The forecast as `predict` prints it: most likely podium first, win and points beside."""
    columns = {
        "driver_name": "driver",
        "constructor_name": "team",
        "win_probability": "win",
        "podium_probability": "podium",
        "points_probability": "points",
    }
    table = forecast.sort_values("podium_probability", ascending=False, kind="stable")
    table = table[list(columns)].rename(columns=columns).reset_index(drop=True)
    for column in ("win", "podium", "points"):
        table[column] = table[column].map(lambda p: "    -" if pd.isna(p) else f"{p:6.1%}")
    table.index = range(1, len(table) + 1)
    return table.to_string()


def champion_recipe(model_name: str, alias: str, moment: str) -> tuple[Recipe, Any]:
    """The recipe a registered version serves (it travels inside its pyfunc), and the version."""
    model, version = serving.load_served(registered_name(model_name, moment), alias)
    return model.unwrap_python_model().recipe, version


def read_table(locations: Locations, features: tuple[str, ...]) -> FeatureTable:
    spec = load_feature_spec(locations.dbt_manifest)
    return read_features(locations.warehouse, spec, features)


def refit_decision(
    current: Any, refitted: str, through: str, holdout_brier: float
) -> serving.Decision:
    """Serve the refit, unless a training moved the champion while it was refitted."""
    if current is None or str(current.version) != refitted:
        moved_to = f"v{current.version}" if current is not None else "nowhere"
        reason = f"the champion moved to {moved_to} while v{refitted} was refitted; refit again"
        return serving.Decision(False, reason, holdout_brier, None, refitted)
    reason = f"refit of champion v{refitted}'s recipe on {through}"
    return serving.Decision(True, reason, holdout_brier, None, refitted)


def refit(
    locations: Locations, model_name: str, moments: tuple[str, ...], experiment: str, force: bool
) -> None:
    """Refit each moment's champion recipe up to the last race with results, and register it
    as what `champion` serves (seconds, not minutes)."""
    started = time.perf_counter()
    tracking.lock_local_store(locations.tracking_uri, "train.py refit")
    tracking.connect(locations)
    tracking.report_orphaned_runs()
    versions = tracking.data_versions(locations.warehouse)
    for moment in moments:
        name = registered_name(model_name, moment)
        recipe, champion = champion_recipe(model_name, serving.CHAMPION, moment)
        tags = champion.tags
        table = read_table(locations, recipe.features)
        season, before_round = serving_target(table)
        cv = CrossValidation(
            table,
            recipe.features,
            int(tags["window"]),
            int(tags["calibration_seasons"]),
            int(tags["seed"]),
        )
        serving_refit = ServingRefit(cv, recipe, season)
        through = serving_refit.trained_through(before_round)
        if (
            not force
            and tags.get("trained_through") == through
            and all(tags.get(key) == value for key, value in versions.items())
        ):
            print(f"{name}: champion v{champion.version} already serves {through}; nothing to do")
            continue
        fit = serving_refit.fit(before_round)
        tracking.configure(locations, experiment)
        rows = parity_rows(table, season)
        run_tags = {
            **tracking.common_tags(
                locations.warehouse, table.spec.sql_sha256, uuid.uuid4().hex[:12]
            ),
            "pitwall.role": "refit",
            "pitwall.moment": moment,
            "refit_of_version": str(champion.version),
        }
        with tracking.tracked_run(run_name=f"refit {name} v{champion.version}", tags=run_tags):
            model_uri, difference = log_served(
                "model", recipe, fit.model, fit.postprocessor, cv, rows
            )
            mlflow.log_metrics({"served_max_abs_diff": difference, "train_rows": fit.train_rows})
        decide = functools.partial(
            refit_decision,
            refitted=str(champion.version),
            through=fit.trained_through,
            holdout_brier=float(tags.get("holdout_brier", "nan")),
        )
        registration = serving.register(
            name,
            model_uri,
            decide,
            {
                **tags,
                **versions,
                "git_commit": run_tags["git_commit"],
                "trained_through": fit.trained_through,
                "refit_of": str(champion.version),
            },
            aliases=(serving.CHAMPION,),
        )
        print(f"{registration.describe()} ({fit.train_rows} rows)")
    print(f"refit done in {time.perf_counter() - started:.0f} s")


def replay(
    locations: Locations,
    model_name: str,
    alias: str,
    season: int,
    first_round: int | None,
    last_round: int | None,
    moments: tuple[str, ...],
    experiment: str,
) -> pd.DataFrame:
    """The weekly loop, race by race, through a past season; returns the summary table."""
    started = time.perf_counter()
    tracking.lock_local_store(locations.tracking_uri, "train.py replay")
    tracking.connect(locations)
    tracking.report_orphaned_runs()
    recipes = {moment: champion_recipe(model_name, alias, moment) for moment in moments}
    features = tuple(dict.fromkeys(f for recipe, _ in recipes.values() for f in recipe.features))
    table = read_table(locations, features)
    past = table.past
    races = past[past["year"] == season][["race_id", "round"]].drop_duplicates()
    races = races[races["round"].between(first_round or 1, last_round or 10**6)]
    if races.empty:
        raise BadInput(f"{season} has no races with results in that range to replay")
    tags = next(iter(recipes.values()))[1].tags
    label_column = table.spec.ranking_label or "finish_position"
    cv = CrossValidation(
        table, features, int(tags["window"]), int(tags["calibration_seasons"]), int(tags["seed"])
    )
    versions = tracking.data_versions(locations.warehouse)
    replay_id = uuid.uuid4().hex
    rounds = races["round"].tolist()
    print(
        f"replaying {season} rounds {rounds[0]}-{rounds[-1]} ({len(rounds)} races): each race is "
        "scored on its actual entrants (its results), by the refit as of the race before and by "
        "the model frozen at the season's start",
        flush=True,
    )
    rows_out: list[dict] = []
    for moment, (recipe, version) in recipes.items():
        name = registered_name(model_name, moment)
        variants = {"refit": recipe, "frozen": recipe}
        if moment == POST_QUALIFYING:
            [grid] = baseline_recipes(recipe.features, POST_QUALIFYING)
            variants[GRID_SLOT_BASELINE] = grid
        for label, variant in variants.items():
            refit_model = ServingRefit(cv, variant, season)
            forecasts = replay_variant(cv, refit_model, variant, races, label == "frozen")
            for race_id, probabilities in forecasts.items():
                rows = past[past["race_id"] == race_id].reset_index(drop=True)
                forecast = forecast_rows(
                    rows,
                    probabilities,
                    moment,
                    name,
                    str(version.version),
                    alias,
                    versions,
                    replay=label,
                    replay_id=replay_id,
                )
                serving.write_forecast(locations.predictions_dir, forecast)
            scored = pd.concat(
                [
                    past[past["race_id"] == race_id][["race_id", "podium", label_column]]
                    .reset_index(drop=True)
                    .join(probabilities)
                    for race_id, probabilities in forecasts.items()
                ]
            )
            race_ids = scored["race_id"].to_numpy()
            summary = metrics(
                race_ids, scored["podium"].to_numpy(), scored["podium_probability"].to_numpy()
            )
            summary |= outcome_metrics(
                race_ids,
                scored[label_column].to_numpy(),
                pd.DataFrame(
                    {
                        column.removesuffix("_probability"): scored[column].to_numpy()
                        for column in serving.OUTPUT_COLUMNS
                    }
                ),
            )
            rows_out.append({"moment": moment, "model": label, "races": len(forecasts), **summary})
            print(
                f"  {moment.replace('_', '-'):<16} {label:<20} brier {summary['brier']:.4f} "
                f"log loss {summary['log_loss']:.4f} top-3 {summary['top3_hit_rate']:.3f} "
                f"win brier {summary['win_brier']:.4f} points brier "
                f"{summary['points_brier']:.4f} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    table_out = pd.DataFrame(rows_out)
    tracking.configure(locations, experiment)
    with tracking.tracked_run(
        run_name=f"replay {season}",
        tags={**versions, "pitwall.role": "replay", "replay_id": replay_id},
    ):
        tracking.log_params(
            {
                "season": season,
                "rounds": f"{rounds[0]}-{rounds[-1]}",
                "alias": alias,
                **{f"{moment}_version": str(v.version) for moment, (_, v) in recipes.items()},
            }
        )
        for row in rows_out:
            prefix = f"{row['moment']}.{row['model']}"
            mlflow.log_metrics(
                {
                    f"{prefix}.{key}": row[key]
                    for key in ("brier", "log_loss", "top3_hit_rate", "win_brier", "points_brier")
                }
            )
        tracking.log_frame(table_out, "replay.csv")
    print(
        f"\n{table_out.to_string(index=False, float_format=lambda v: f'{v:.4f}')}\n"
        f"stored with replay id {replay_id[:8]}; per race: "
        f"`select * from prediction_scorecard where replay is not null and year = {season}`\n"
        f"done in {time.perf_counter() - started:.0f} s"
    )
    return table_out


def replay_variant(
    cv: CrossValidation,
    refit: ServingRefit,
    recipe: Recipe,
    races: pd.DataFrame,
    frozen: bool,
) -> dict[int, pd.DataFrame]:
    """Probabilities per race (`serving.OUTPUT_COLUMNS`): the season-start model for every race
    (`frozen`), or a model refitted on everything before each race."""
    past = cv.past
    postprocessor = refit.postprocessor()

    def score(race_id: int, round_: int, fit: Any = None) -> pd.DataFrame:
        fit = fit or refit.fit(round_)
        rows = past[past["race_id"] == race_id]
        matrix = model_matrix(rows, recipe.features, cv.categories)
        raw = fit.model.score(matrix)
        return serving.served_frame(postprocessor, rows["race_id"].to_numpy(), raw)

    pairs = list(races.itertuples(index=False))
    if frozen:
        season_start = refit.fit(1)
        return {race.race_id: score(race.race_id, race.round, season_start) for race in pairs}
    with ThreadPoolExecutor(cv.workers) as pool:
        scored = pool.map(lambda race: score(race.race_id, race.round), pairs)
        return {race.race_id: probability for race, probability in zip(pairs, scored, strict=True)}
