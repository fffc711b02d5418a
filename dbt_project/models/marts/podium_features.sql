{#- One row per (race, driver): the contract the model trains and scores on. Every feature is
    computed upstream from races strictly before this one; this model only joins them onto the
    entries spine. Left joins throughout: an input missing a row leaves that entrant's features
    null instead of silently dropping the entry (a data test holds the row count to the spine). -#}
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

race_context as (
    select * from {{ ref('int_race_context') }}
),

driver_race_context as (
    select * from {{ ref('int_driver_race_context') }}
),

driver_form as (
    select * from {{ ref('int_driver_form') }}
),

driver_circuit_record as (
    select * from {{ ref('int_driver_circuit_record') }}
),

driver_standings as (
    select * from {{ ref('int_driver_standings_before_race') }}
),

constructor_form as (
    select * from {{ ref('int_constructor_form') }}
),

driver_pace_form as (
    select * from {{ ref('int_driver_pace_form') }}
),

constructor_pace_form as (
    select * from {{ ref('int_constructor_pace_form') }}
),

teammate_comparison as (
    select * from {{ ref('int_driver_teammate_comparison') }}
),

qualifying_pace as (
    select * from {{ ref('int_constructor_qualifying_pace') }}
),

official_standings as (
    select * from {{ ref('int_official_standings_before_race') }}
),

regulation_clock as (
    select * from {{ ref('int_regulation_clock') }}
),

constructor_era_form as (
    select * from {{ ref('int_constructor_era_form') }}
),

practice_pace as (
    select * from {{ ref('int_driver_practice_pace') }}
),

race_relative as (
    select * from {{ ref('int_race_relative_features') }}
),

qualifying_classification as (
    select * from {{ ref('int_qualifying_classification') }}
),

features as (
    select
        entries.race_id,
        entries.driver_id,
        entries.constructor_id,
        entries.circuit_id,
        entries.year,
        entries.round,
        entries.race_date,
        race_context.race_name,
        drivers.driver_name,
        constructors.constructor_name,
        drivers.driver_ref,
        constructors.constructor_ref,
        not entries.has_result as is_upcoming,
        entries.entrant_source,
        entries.podium,
        entries.finish_position_order as finish_position,
        driver_form.driver_podium_rate_3,
        driver_form.driver_podium_rate_5,
        driver_form.driver_podium_rate_10,
        constructor_form.constructor_podium_rate_3,
        constructor_form.constructor_podium_rate_5,
        constructor_form.constructor_podium_rate_10,
        constructor_form.constructor_mechanical_dnf_rate_5,
        driver_race_context.driver_age_years,
        driver_form.driver_experience,
        driver_circuit_record.driver_circuit_podium_rate,
        driver_circuit_record.driver_circuit_visits,
        driver_form.driver_season_podium_rate,
        driver_standings.season_points_before_race,
        driver_standings.driver_championship_position,
        race_context.regulation_era,
        race_context.circuit_type,
        cast(entries.grid_size as integer) as grid_size,
        driver_race_context.is_home_race,
        constructor_pace_form.constructor_points_per_car_3,
        constructor_pace_form.constructor_points_per_car_5,
        constructor_pace_form.constructor_points_per_car_10,
        constructor_pace_form.constructor_mean_start_3,
        constructor_pace_form.constructor_mean_start_5,
        constructor_pace_form.constructor_mean_start_10,
        constructor_pace_form.constructor_mean_finish_3,
        constructor_pace_form.constructor_mean_finish_5,
        constructor_pace_form.constructor_mean_finish_10,
        driver_pace_form.driver_points_per_race_5,
        driver_pace_form.driver_points_per_race_10,
        driver_pace_form.driver_mean_start_5,
        driver_pace_form.driver_mean_start_10,
        driver_pace_form.driver_mean_finish_5,
        driver_pace_form.driver_mean_finish_10,
        teammate_comparison.driver_teammate_start_gap_10,
        qualifying_pace.constructor_qualifying_gap_pct_3,
        official_standings.driver_standings_position,
        official_standings.driver_standings_points_share,
        official_standings.driver_standings_gap_to_leader,
        official_standings.constructor_standings_position,
        official_standings.constructor_standings_points_share,
        official_standings.constructor_standings_gap_to_leader,
        official_standings.official_standings_source,
        regulation_clock.races_since_regulation_reset,
        constructor_era_form.constructor_era_points_per_car,
        race_relative.driver_podium_rate_10_race_rank,
        race_relative.driver_podium_rate_10_gap_to_third,
        race_relative.driver_points_per_race_10_race_rank,
        race_relative.driver_points_per_race_10_gap_to_third,
        race_relative.constructor_points_per_car_5_race_rank,
        race_relative.constructor_points_per_car_5_gap_to_third,
        race_relative.constructor_mean_start_5_race_rank,
        race_relative.constructor_mean_start_5_gap_to_third,
        race_relative.constructor_qualifying_gap_pct_3_race_rank,
        race_relative.constructor_qualifying_gap_pct_3_gap_to_third,
        race_relative.driver_standings_points_share_race_rank,
        race_relative.driver_standings_points_share_gap_to_third,
        practice_pace.practice_sessions_before_qualifying,
        practice_pace.practice_best_gap_pct,
        practice_pace.practice_last_session_gap_pct,
        practice_pace.practice_team_best_gap_pct,
        practice_pace.practice_laps,
        race_relative.practice_best_gap_pct_race_rank,
        race_relative.practice_best_gap_pct_gap_to_third,
        race_relative.practice_team_best_gap_pct_race_rank,
        race_relative.practice_team_best_gap_pct_gap_to_third,
        qualifying_classification.qualifying_position,
        qualifying_classification.qualifying_gap_to_pole_pct,
        qualifying_classification.qualifying_teammate_gap,
        qualifying_classification.sprint_position
    from entries
    left join drivers on entries.driver_id = drivers.driver_id
    left join constructors on entries.constructor_id = constructors.constructor_id
    left join race_context on entries.race_id = race_context.race_id
    left join driver_race_context
        on entries.race_id = driver_race_context.race_id
        and entries.driver_id = driver_race_context.driver_id
    left join driver_form
        on entries.race_id = driver_form.race_id
        and entries.driver_id = driver_form.driver_id
    left join driver_circuit_record
        on entries.race_id = driver_circuit_record.race_id
        and entries.driver_id = driver_circuit_record.driver_id
    left join driver_standings
        on entries.race_id = driver_standings.race_id
        and entries.driver_id = driver_standings.driver_id
    left join constructor_form
        on entries.race_id = constructor_form.race_id
        and entries.constructor_id = constructor_form.constructor_id
    left join constructor_pace_form
        on entries.race_id = constructor_pace_form.race_id
        and entries.constructor_id = constructor_pace_form.constructor_id
    left join driver_pace_form
        on entries.race_id = driver_pace_form.race_id
        and entries.driver_id = driver_pace_form.driver_id
    left join teammate_comparison
        on entries.race_id = teammate_comparison.race_id
        and entries.driver_id = teammate_comparison.driver_id
    left join qualifying_pace
        on entries.race_id = qualifying_pace.race_id
        and entries.constructor_id = qualifying_pace.constructor_id
    left join official_standings
        on entries.race_id = official_standings.race_id
        and entries.driver_id = official_standings.driver_id
    left join regulation_clock on entries.race_id = regulation_clock.race_id
    left join constructor_era_form
        on entries.race_id = constructor_era_form.race_id
        and entries.constructor_id = constructor_era_form.constructor_id
    -- practice data is optional (and starts in 1995): no row means no practice features
    left join practice_pace
        on entries.race_id = practice_pace.race_id
        and entries.driver_id = practice_pace.driver_id
    left join race_relative
        on entries.race_id = race_relative.race_id
        and entries.driver_id = race_relative.driver_id
    left join qualifying_classification
        on entries.race_id = qualifying_classification.race_id
        and entries.driver_id = qualifying_classification.driver_id
)

select * from features
