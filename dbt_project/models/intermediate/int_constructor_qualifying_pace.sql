{#- Team one-lap pace: the team's best first-session qualifying lap as % behind the race's
    fastest first-session lap, averaged over the team's previous 3 races (its lineage's:
    `team_history_keys`). Races without times (most of 1996-2002 and everything before 1994) are
    skipped; with none in the window the feature is null. Gaps are capped at var
    `qualifying_gap_cap_pct` (10 %): beyond that the lap was aborted or wet. -#}
with

qualifying as (
    select * from {{ ref('stg_ergast__qualifying') }}
),

team_races as (
    select * from {{ ref('int_constructor_race_results') }}
),

race_fastest as (
    select
        race_id,
        min(q1_lap_ms) as fastest_lap_ms
    from qualifying
    group by race_id
),

team_best as (
    select
        race_id,
        constructor_id,
        min(q1_lap_ms) as best_lap_ms
    from qualifying
    group by race_id, constructor_id
),

team_gap as (
    select
        team_best.race_id,
        team_best.constructor_id,
        -- least() skips nulls, so a race or team without a time must stay null explicitly
        case
            when team_best.best_lap_ms is not null
                then least(
                    100.0 * (team_best.best_lap_ms - race_fastest.fastest_lap_ms)
                    / race_fastest.fastest_lap_ms,
                    {{ var('qualifying_gap_cap_pct') }}
                )
        end as qualifying_gap_pct
    from team_best
    inner join race_fastest on team_best.race_id = race_fastest.race_id
),

team_races_with_gap as (
    select
        team_races.race_id,
        team_races.constructor_id,
        team_races.lineage_id,
        team_races.year,
        team_races.round,
        team_gap.qualifying_gap_pct
    from team_races
    left join team_gap
        on team_races.race_id = team_gap.race_id
        and team_races.constructor_id = team_gap.constructor_id
),

rolled as (
    select
        race_id,
        constructor_id,
        qualifying_gap_pct,
    {%- for history in team_history_keys() %}
        {{ lagged_mean('qualifying_gap_pct', history.partition_by, 3) }}
            as constructor_qualifying_gap_pct_3{{ history.suffix }}{{ ',' if not loop.last }}
    {%- endfor %}
    from team_races_with_gap
)

select * from rolled
