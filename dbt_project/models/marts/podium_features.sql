{#- One row per (race, driver): the contract the model trains and scores on. Every feature is
    computed upstream from races strictly before this one; this model only joins them. -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

drivers as (
    select * from {{ ref('stg_ergast__drivers') }}
),

constructors as (
    select * from {{ ref('stg_ergast__constructors') }}
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
        not entries.has_result as is_upcoming,
        entries.podium,
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
        driver_race_context.is_home_race
    from entries
    inner join drivers on entries.driver_id = drivers.driver_id
    inner join constructors on entries.constructor_id = constructors.constructor_id
    inner join race_context on entries.race_id = race_context.race_id
    inner join driver_race_context
        on entries.race_id = driver_race_context.race_id
        and entries.driver_id = driver_race_context.driver_id
    inner join driver_form
        on entries.race_id = driver_form.race_id
        and entries.driver_id = driver_form.driver_id
    inner join driver_circuit_record
        on entries.race_id = driver_circuit_record.race_id
        and entries.driver_id = driver_circuit_record.driver_id
    inner join driver_standings
        on entries.race_id = driver_standings.race_id
        and entries.driver_id = driver_standings.driver_id
    inner join constructor_form
        on entries.race_id = constructor_form.race_id
        and entries.constructor_id = constructor_form.constructor_id
)

select * from features
