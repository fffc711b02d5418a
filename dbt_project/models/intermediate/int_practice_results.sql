{#- Every free-practice row with its session's fastest lap, mapped to Ergast where it can be:
    the race by (year, round), the driver by `int_practice_driver_map`, the team through the
    driver's Ergast entry in that race. The fastest lap counts every car that ran, mapped or not
    (a reserve driver's lap is still the session's pace). -#}
with

practice as (
    select * from {{ ref('stg_f1db__practice_results') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

driver_map as (
    select * from {{ ref('int_practice_driver_map') }}
),

entries as (
    select * from {{ ref('int_race_entries') }}
),

with_session_fastest as (
    select
        *,
        min(best_lap_ms) over (partition by f1db_race_id, session_number) as session_fastest_ms
    from practice
),

mapped as (
    select
        with_session_fastest.*,
        races.race_id,
        driver_map.driver_id,
        entries.constructor_id,
        case
            when races.race_id is null then 'race not in the Ergast calendar'
            when driver_map.driver_id is null then 'driver not mapped to an Ergast driver'
            when entries.driver_id is null then 'driver has no entry in this Ergast race'
        end as unmapped_reason
    from with_session_fastest
    left join races
        on with_session_fastest.year = races.year
        and with_session_fastest.round = races.round
    left join driver_map on with_session_fastest.f1db_driver_id = driver_map.f1db_driver_id
    left join entries
        on races.race_id = entries.race_id
        and driver_map.driver_id = entries.driver_id
)

select * from mapped
