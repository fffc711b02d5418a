{#- The drivers' championship as it stood before each race: points from the earlier rounds of the
    season (race plus sprint points; the current weekend's sprint is excluded), ranked among this
    race's entrants. Tied drivers share the worst position of their tie, so at round 1 everyone
    is at the back of the grid (position = number of entrants). -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

season_points as (
    select
        race_id,
        driver_id,
        cast(coalesce(sum(race_points + sprint_points) over (
            partition by driver_id, year order by round
            rows between unbounded preceding and 1 preceding
        ), 0) as double) as season_points_before_race
    from entries
),

ranked as (
    select
        race_id,
        driver_id,
        season_points_before_race,
        cast(count(*) over (
            partition by race_id order by season_points_before_race desc
            range between unbounded preceding and current row
        ) as integer) as driver_championship_position
    from season_points
)

select * from ranked
