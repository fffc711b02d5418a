{#- The official drivers' and constructors' championships as they stood before the race: the
    published standings after the previous round. For round 1 the previous round is the last
    race of the previous season, so a season opens with last year's final standings. Official
    points of the time, sprints included, as the championship counts them. Null for a driver or
    team not in those standings (a debut). -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

entries as (
    select * from {{ ref('int_race_entries') }}
),

driver_standings as (
    select * from {{ ref('stg_ergast__driver_standings') }}
),

constructor_standings as (
    select * from {{ ref('stg_ergast__constructor_standings') }}
),

races_with_standings as (
    select distinct race_id from driver_standings
),

previous_standings as (
    select
        races.race_id,
        last_value(races_with_standings.race_id ignore nulls) over (
            order by races.year, races.round
            rows between unbounded preceding and 1 preceding
        ) as standings_race_id
    from races
    left join races_with_standings on races.race_id = races_with_standings.race_id
),

driver_table as (
    select
        race_id,
        driver_id,
        championship_position,
        points,
        max(points) over (partition by race_id) as leader_points
    from driver_standings
),

constructor_table as (
    select
        race_id,
        constructor_id,
        championship_position,
        points,
        max(points) over (partition by race_id) as leader_points
    from constructor_standings
),

standings_before_race as (
    select
        entries.race_id,
        entries.driver_id,
        driver_table.championship_position as driver_standings_position,
        driver_table.points / nullif(driver_table.leader_points, 0)
            as driver_standings_points_share,
        driver_table.leader_points - driver_table.points as driver_standings_gap_to_leader,
        constructor_table.championship_position as constructor_standings_position,
        constructor_table.points / nullif(constructor_table.leader_points, 0)
            as constructor_standings_points_share,
        constructor_table.leader_points - constructor_table.points
            as constructor_standings_gap_to_leader
    from entries
    inner join previous_standings on entries.race_id = previous_standings.race_id
    left join driver_table
        on previous_standings.standings_race_id = driver_table.race_id
        and entries.driver_id = driver_table.driver_id
    left join constructor_table
        on previous_standings.standings_race_id = constructor_table.race_id
        and entries.constructor_id = constructor_table.constructor_id
)

select * from standings_before_race
