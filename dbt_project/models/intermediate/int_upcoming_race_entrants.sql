{#- The next scheduled race without results and who is expected to start it, from the best
    source available, in this order:
    1. `qualifying`: the race's qualifying classification, once published (the real field);
    2. `entry_list`: the user's entry list for the race (`entries/<year>.csv`), which may name
       drivers and teams Ergast does not know yet;
    3. `last_race`: the driver-team pairs of the most recent race with results (read from
       `int_driver_race_results`, so a shared drive enters with its first listed car's team),
       the guess of last resort; `python train.py predict` warns when it is used. -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

driver_race_results as (
    select * from {{ ref('int_driver_race_results') }}
),

qualifying as (
    select * from {{ ref('stg_ergast__qualifying') }}
),

entry_lists as (
    select * from {{ ref('stg_entries__entry_lists') }}
),

drivers as (
    select * from {{ ref('int_drivers') }}
),

constructors as (
    select * from {{ ref('int_constructors') }}
),

races_with_results as (
    select distinct race_id from driver_race_results
),

last_completed_race as (
    select
        races.race_id,
        races.year,
        races.round
    from races
    inner join races_with_results on races.race_id = races_with_results.race_id
    qualify row_number() over (order by races.year desc, races.round desc) = 1
),

next_race as (
    select
        races.race_id,
        races.year,
        races.round
    from races
    cross join last_completed_race
    left join races_with_results on races.race_id = races_with_results.race_id
    where
        (
            races.year > last_completed_race.year
            or (races.year = last_completed_race.year and races.round > last_completed_race.round)
        )
        and races_with_results.race_id is null
    qualify row_number() over (order by races.year, races.round) = 1
),

qualifying_pairs as (
    -- one row per driver: a driver classified twice would be a source error, keep the best
    select
        qualifying.driver_id,
        qualifying.constructor_id,
        'qualifying' as entrant_source,
        1 as source_priority
    from qualifying
    inner join next_race on qualifying.race_id = next_race.race_id
    qualify row_number() over (
            partition by qualifying.driver_id order by qualifying.qualifying_position
        ) = 1
),

entry_list_pairs as (
    select
        drivers.driver_id,
        constructors.constructor_id,
        'entry_list' as entrant_source,
        2 as source_priority
    from entry_lists
    inner join next_race
        on entry_lists.year = next_race.year
        and entry_lists.round = next_race.round
    inner join drivers on entry_lists.driver_ref = drivers.driver_ref
    inner join constructors on entry_lists.constructor_ref = constructors.constructor_ref
),

last_race_pairs as (
    select
        driver_race_results.driver_id,
        driver_race_results.constructor_id,
        'last_race' as entrant_source,
        3 as source_priority
    from driver_race_results
    inner join last_completed_race on driver_race_results.race_id = last_completed_race.race_id
),

candidate_pairs as (
    select * from qualifying_pairs
    union all
    select * from entry_list_pairs
    union all
    select * from last_race_pairs
),

best_source as (
    select min(source_priority) as source_priority from candidate_pairs
),

upcoming_entrants as (
    select
        next_race.race_id,
        candidate_pairs.driver_id,
        candidate_pairs.constructor_id,
        candidate_pairs.entrant_source
    from candidate_pairs
    inner join best_source on candidate_pairs.source_priority = best_source.source_priority
    cross join next_race
)

select * from upcoming_entrants
