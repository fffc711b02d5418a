{#- The next scheduled race without results, with the driver-team pairs expected to enter it:
    those of the most recent race with results (the best guess before the entry list is final). -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

results as (
    select * from {{ ref('stg_ergast__results') }}
),

races_with_results as (
    select distinct race_id from results
),

last_completed_race as (
    select races.race_id, races.year, races.round
    from races
    inner join races_with_results on races.race_id = races_with_results.race_id
    qualify row_number() over (order by races.year desc, races.round desc) = 1
),

next_race as (
    select races.race_id
    from races
    cross join last_completed_race
    where
        (races.year > last_completed_race.year
            or (races.year = last_completed_race.year and races.round > last_completed_race.round))
        and races.race_id not in (select race_id from races_with_results)
    qualify row_number() over (order by races.year, races.round) = 1
),

last_race_pairs as (
    -- a driver who drove two cars in that race enters with the team of the better-classified one
    select
        results.driver_id,
        arg_min(results.constructor_id, results.finish_position_order) as constructor_id
    from results
    inner join last_completed_race on results.race_id = last_completed_race.race_id
    group by results.driver_id
),

upcoming_entrants as (
    select
        next_race.race_id,
        last_race_pairs.driver_id,
        last_race_pairs.constructor_id
    from next_race
    cross join last_race_pairs
)

select * from upcoming_entrants
