{#- The driver against the team-mates of the same car, which isolates the driver from the car:
    the mean starting-slot gap to the team-mates over the driver's last 10 races that had one.
    Negative = usually starts ahead. Races without a team-mate neither count nor reset it. -#}
with

entries as (
    select * from {{ ref('int_entry_performance') }}
),

team_starts as (
    select
        race_id,
        constructor_id,
        sum(start_position) as start_position_sum,
        count(start_position) as cars_with_start
    from entries
    group by race_id, constructor_id
),

start_gaps as (
    select
        entries.race_id,
        entries.driver_id,
        entries.year,
        entries.round,
        case
            when team_starts.cars_with_start > 1 and entries.start_position is not null
                then entries.start_position - (
                    (team_starts.start_position_sum - entries.start_position)
                    / (team_starts.cars_with_start - 1)
                )
        end as start_gap_to_teammates
    from entries
    inner join team_starts
        on entries.race_id = team_starts.race_id
        and entries.constructor_id = team_starts.constructor_id
),

gap_through_shared_race as (
    -- rolled over shared races only, so "last 10" means the last 10 races with a team-mate
    select
        race_id,
        driver_id,
        avg(start_gap_to_teammates) over (
            partition by driver_id order by year, round
            rows between 9 preceding and current row
        ) as mean_gap_through_race
    from start_gaps
    where start_gap_to_teammates is not null
),

before_race as (
    select
        start_gaps.race_id,
        start_gaps.driver_id,
        last_value(gap_through_shared_race.mean_gap_through_race ignore nulls) over (
            partition by start_gaps.driver_id order by start_gaps.year, start_gaps.round
            rows between unbounded preceding and 1 preceding
        ) as driver_teammate_start_gap_10
    from start_gaps
    left join gap_through_shared_race
        on start_gaps.race_id = gap_through_shared_race.race_id
        and start_gaps.driver_id = gap_through_shared_race.driver_id
)

select * from before_race
