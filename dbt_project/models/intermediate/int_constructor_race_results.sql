{#- One row per (race, team): the grain at which team features are rolled, so that both cars
    of a team read the same history and neither sees its team-mate's result in the current race. -#}
with

entries as (
    select * from {{ ref('int_entry_performance') }}
),

team_races as (
    select
        race_id,
        constructor_id,
        year,
        round,
        has_result,
        count(*) as car_count,
        sum(podium) as podium_cars,
        sum(cast(is_mechanical_dnf as integer)) as mechanical_dnf_cars,
        sum(modern_points) as modern_points,
        sum(start_position) as start_position_sum,
        sum(finish_position) as finish_position_sum
    from entries
    group by race_id, constructor_id, year, round, has_result
)

select * from team_races
