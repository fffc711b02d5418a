{#- One row per (race, driver): every past entry with its podium target, plus the expected
    entrants of the next race with the target null. Past entries come collapsed from
    `int_driver_race_results` (one rule for shared drives), upcoming ones from
    `int_upcoming_race_entrants`, which takes its pairs from the same model. -#}
with

driver_race_results as (
    select * from {{ ref('int_driver_race_results') }}
),

upcoming_entrants as (
    select * from {{ ref('int_upcoming_race_entrants') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

past_entries as (
    select
        race_id,
        driver_id,
        constructor_id,
        true as has_result,
        'results' as entrant_source,
        grid_position,
        finish_position_order,
        classified_position,
        status_category,
        podium,
        is_mechanical_dnf,
        is_start,
        race_points,
        sprint_points,
        cars_driven
    from driver_race_results
),

upcoming_entries as (
    select
        race_id,
        driver_id,
        constructor_id,
        false as has_result,
        entrant_source,
        cast(null as integer) as grid_position,
        cast(null as integer) as finish_position_order,
        cast(null as integer) as classified_position,
        cast(null as varchar) as status_category,
        cast(null as integer) as podium,
        cast(null as boolean) as is_mechanical_dnf,
        cast(null as boolean) as is_start,
        cast(null as double) as race_points,
        cast(null as double) as sprint_points,
        cast(null as bigint) as cars_driven
    from upcoming_entrants
),

entries as (
    select * from past_entries
    union all
    select * from upcoming_entries
),

entries_in_calendar as (
    select
        entries.race_id,
        entries.driver_id,
        entries.constructor_id,
        races.circuit_id,
        races.year,
        races.round,
        races.race_date,
        entries.has_result,
        entries.entrant_source,
        entries.grid_position,
        entries.finish_position_order,
        entries.classified_position,
        entries.status_category,
        entries.podium,
        entries.is_mechanical_dnf,
        entries.is_start,
        entries.race_points,
        entries.sprint_points,
        entries.cars_driven,
        count(*) over (partition by entries.race_id) as grid_size
    from entries
    inner join races on entries.race_id = races.race_id
)

select * from entries_in_calendar
