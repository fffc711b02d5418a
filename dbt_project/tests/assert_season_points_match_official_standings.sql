{#- Cross-checks the leak-free championship feature against the official standings: from 1990 on
    (no dropped scores), the points a driver carries into round k must equal the official standings
    after round k - 1 (sprints included). Returns the rows that disagree. Before 1990 the official
    totals drop a driver's worst results, which a sum of earlier rounds does not reproduce. -#}
with

features as (
    select * from {{ ref('podium_features') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

official_standings as (
    select * from {{ ref('stg_ergast__driver_standings') }}
),

previous_round as (
    select
        races.race_id,
        previous_race.race_id as previous_race_id
    from races
    inner join races as previous_race
        on races.year = previous_race.year
        and races.round = previous_race.round + 1
    where races.year >= 1990
),

compared as (
    select
        features.race_id,
        features.driver_id,
        features.season_points_before_race,
        official_standings.points as official_points_after_previous_round
    from features
    inner join previous_round on features.race_id = previous_round.race_id
    inner join official_standings
        on previous_round.previous_race_id = official_standings.race_id
        and features.driver_id = official_standings.driver_id
)

select *
from compared
where season_points_before_race <> official_points_after_previous_round
