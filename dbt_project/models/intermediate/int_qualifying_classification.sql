{#- What the qualifying classification (and the weekend's sprint) says about each entrant: the
    post-qualifying features. Known on the eve of the race, never before qualifying, so the
    pre-qualifying model never reads them (`meta.moment: post_qualifying`). Read from the
    qualifying table, not from `results.grid`: the grid includes penalties decided later, and a
    model must be trained on what it will be given when it scores. -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

qualifying as (
    select * from {{ ref('stg_ergast__qualifying') }}
),

sprint_results as (
    select * from {{ ref('stg_ergast__sprint_results') }}
),

qualifying_laps as (
    -- a driver classified twice in one race is a source error: keep the better classification
    select
        race_id,
        driver_id,
        qualifying_position,
        -- least() skips nulls: the fastest of the sessions the driver set a time in
        least(q1_lap_ms, q2_lap_ms, q3_lap_ms) as best_lap_ms
    from qualifying
    qualify row_number() over (
            partition by race_id, driver_id order by qualifying_position
        ) = 1
),

with_pole as (
    select
        race_id,
        driver_id,
        qualifying_position,
        best_lap_ms,
        min(best_lap_ms) over (partition by race_id) as pole_lap_ms
    from qualifying_laps
),

entries_with_qualifying as (
    select
        entries.race_id,
        entries.driver_id,
        entries.constructor_id,
        with_pole.qualifying_position,
        case
            when with_pole.best_lap_ms is not null
                then least(
                    100.0 * (with_pole.best_lap_ms - with_pole.pole_lap_ms) / with_pole.pole_lap_ms,
                    {{ var('qualifying_gap_cap_pct') }}
                )
        end as qualifying_gap_to_pole_pct
    from entries
    left join with_pole
        on entries.race_id = with_pole.race_id
        and entries.driver_id = with_pole.driver_id
),

teammate_best as (
    select
        drivers.race_id,
        drivers.driver_id,
        min(teammates.qualifying_position) as teammate_best_position
    from entries_with_qualifying as drivers
    inner join entries_with_qualifying as teammates
        on drivers.race_id = teammates.race_id
        and drivers.constructor_id = teammates.constructor_id
        and drivers.driver_id != teammates.driver_id
    group by drivers.race_id, drivers.driver_id
),

sprint_positions as (
    select
        race_id,
        driver_id,
        min(finish_position_order) as sprint_position
    from sprint_results
    group by race_id, driver_id
),

qualifying_classification as (
    select
        entries_with_qualifying.race_id,
        entries_with_qualifying.driver_id,
        entries_with_qualifying.qualifying_position,
        entries_with_qualifying.qualifying_gap_to_pole_pct,
        entries_with_qualifying.qualifying_position - teammate_best.teammate_best_position
            as qualifying_teammate_gap,
        sprint_positions.sprint_position
    from entries_with_qualifying
    left join teammate_best
        on entries_with_qualifying.race_id = teammate_best.race_id
        and entries_with_qualifying.driver_id = teammate_best.driver_id
    left join sprint_positions
        on entries_with_qualifying.race_id = sprint_positions.race_id
        and entries_with_qualifying.driver_id = sprint_positions.driver_id
)

select * from qualifying_classification
