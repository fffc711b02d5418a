{#- The measured candidates: columns that exist only for the ablation, kept apart from the
    analysts' contract (`podium_features`) so that table holds only what the default model and
    analysts use. Same rows as `podium_features` (the entries spine, left joins), keyed by
    (race_id, driver_id). Every column is known before the race, like the features. -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

drivers as (
    select * from {{ ref('int_drivers') }}
),

constructors as (
    select * from {{ ref('int_constructors') }}
),

circuits as (
    select * from {{ ref('stg_ergast__circuits') }}
),

practice_pace as (
    select * from {{ ref('int_driver_practice_pace') }}
),

race_relative as (
    select * from {{ ref('int_race_relative_features') }}
),

constructor_form as (
    select * from {{ ref('int_constructor_form') }}
),

constructor_pace_form as (
    select * from {{ ref('int_constructor_pace_form') }}
),

qualifying_pace as (
    select * from {{ ref('int_constructor_qualifying_pace') }}
),

constructor_era_form as (
    select * from {{ ref('int_constructor_era_form') }}
),

candidates as (
    select
        entries.race_id,
        entries.driver_id,
        -- identities as categories: can a model learn who is fast beyond what form says?
        drivers.driver_ref as driver_identifier,
        constructors.constructor_ref as constructor_identifier,
        circuits.circuit_ref as circuit_identifier,
        entries.year as calendar_year,
        -- practice pace without the two-session gate, so the gate itself can be measured
        practice_pace.practice_best_gap_pct_ungated,
        practice_pace.practice_last_session_gap_pct_ungated,
        practice_pace.practice_team_best_gap_pct_ungated,
        practice_pace.practice_laps_ungated,
        race_relative.practice_best_gap_pct_ungated_race_rank,
        race_relative.practice_best_gap_pct_ungated_gap_to_third,
        race_relative.practice_team_best_gap_pct_ungated_race_rank,
        race_relative.practice_team_best_gap_pct_ungated_gap_to_third,
        -- the team features rolled by Ergast constructor alone, as before the team lineage, so
        -- the lineage itself can be measured
        constructor_form.constructor_podium_rate_3_without_lineage,
        constructor_form.constructor_podium_rate_5_without_lineage,
        constructor_form.constructor_podium_rate_10_without_lineage,
        constructor_form.constructor_mechanical_dnf_rate_5_without_lineage,
        constructor_pace_form.constructor_points_per_car_3_without_lineage,
        constructor_pace_form.constructor_points_per_car_5_without_lineage,
        constructor_pace_form.constructor_points_per_car_10_without_lineage,
        constructor_pace_form.constructor_mean_start_3_without_lineage,
        constructor_pace_form.constructor_mean_start_5_without_lineage,
        constructor_pace_form.constructor_mean_start_10_without_lineage,
        constructor_pace_form.constructor_mean_finish_3_without_lineage,
        constructor_pace_form.constructor_mean_finish_5_without_lineage,
        constructor_pace_form.constructor_mean_finish_10_without_lineage,
        qualifying_pace.constructor_qualifying_gap_pct_3_without_lineage,
        constructor_era_form.constructor_era_points_per_car_without_lineage,
        race_relative.constructor_points_per_car_5_race_rank_without_lineage,
        race_relative.constructor_points_per_car_5_gap_to_third_without_lineage,
        race_relative.constructor_mean_start_5_race_rank_without_lineage,
        race_relative.constructor_mean_start_5_gap_to_third_without_lineage,
        race_relative.constructor_qualifying_gap_pct_3_race_rank_without_lineage,
        race_relative.constructor_qualifying_gap_pct_3_gap_to_third_without_lineage
    from entries
    left join drivers on entries.driver_id = drivers.driver_id
    left join constructors on entries.constructor_id = constructors.constructor_id
    left join circuits on entries.circuit_id = circuits.circuit_id
    left join practice_pace
        on entries.race_id = practice_pace.race_id
        and entries.driver_id = practice_pace.driver_id
    left join race_relative
        on entries.race_id = race_relative.race_id
        and entries.driver_id = race_relative.driver_id
    left join constructor_form
        on entries.race_id = constructor_form.race_id
        and entries.constructor_id = constructor_form.constructor_id
    left join constructor_pace_form
        on entries.race_id = constructor_pace_form.race_id
        and entries.constructor_id = constructor_pace_form.constructor_id
    left join qualifying_pace
        on entries.race_id = qualifying_pace.race_id
        and entries.constructor_id = qualifying_pace.constructor_id
    left join constructor_era_form
        on entries.race_id = constructor_era_form.race_id
        and entries.constructor_id = constructor_era_form.constructor_id
)

select * from candidates
