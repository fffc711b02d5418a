{#- Every free-practice result row of the four session files, one row per car per session. -#}
with

{% for session in [1, 2, 3, 4] -%}
    session_{{ session }} as (
        select
            {{ session }} as session_number,
            cast(raceId as integer) as f1db_race_id,
            cast(year as integer) as year,
            cast(round as integer) as round,
            cast(positionDisplayOrder as integer) as display_order,
            driverId as f1db_driver_id,
            constructorId as f1db_constructor_id,
            cast(timeMillis as integer) as best_lap_ms,
            cast(laps as integer) as laps
        from {{ source('f1db', 'free_practice_' ~ session ~ '_results') }}
    ),

{% endfor -%}
unioned as (
    select * from session_1
    union all
    select * from session_2
    union all
    select * from session_3
    union all
    select * from session_4
)

select * from unioned
