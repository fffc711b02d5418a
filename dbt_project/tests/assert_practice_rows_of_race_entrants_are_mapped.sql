{#- A practice row left unmapped must not belong to a driver entered in that race: if an Ergast
    entrant of the race shares the f1db driver's date of birth, the map missed a race driver
    (a spelling the name rule does not cover) and that driver's pace would be silently lost.
    Returns such rows; reserve and test drivers have no entrant with their birthday. -#}
with

unmapped as (
    select * from {{ ref('int_practice_unmapped_rows') }}
),

f1db_drivers as (
    select * from {{ ref('stg_f1db__drivers') }}
),

entries as (
    select * from {{ ref('int_race_entries') }}
),

ergast_drivers as (
    select * from {{ ref('stg_ergast__drivers') }}
)

select
    unmapped.year,
    unmapped.round,
    unmapped.session_number,
    unmapped.f1db_driver_id,
    ergast_drivers.driver_ref as entrant_with_the_same_birthday
from unmapped
inner join f1db_drivers on unmapped.f1db_driver_id = f1db_drivers.f1db_driver_id
inner join entries on unmapped.race_id = entries.race_id
inner join ergast_drivers
    on entries.driver_id = ergast_drivers.driver_id
    and f1db_drivers.date_of_birth = ergast_drivers.date_of_birth
