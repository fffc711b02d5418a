{#- Free-practice rows that cannot be joined to an Ergast entry, kept and explained rather than
    dropped: reserve and test drivers who ran on Friday but never entered the race, drivers f1db
    and Ergast spell beyond the normalised-name rule, races outside the Ergast calendar. Their laps
    still count towards each session's fastest time. -#}
with

practice_results as (
    select * from {{ ref('int_practice_results') }}
)

select
    f1db_race_id,
    year,
    round,
    session_number,
    f1db_driver_id,
    f1db_constructor_id,
    best_lap_ms,
    laps,
    race_id,
    driver_id,
    unmapped_reason
from practice_results
where unmapped_reason is not null
