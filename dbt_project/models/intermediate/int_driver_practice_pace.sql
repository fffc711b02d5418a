{#- Free-practice pace of the current weekend, known before qualifying: only the sessions held
    before the first qualifying-type session count. Per (race, driver): the best lap as % behind
    the session's fastest, best over those sessions and in the last of them, capped at var
    `practice_gap_cap_pct` (5 %: a wet, red-flagged or aborted run says nothing about pace); the
    team's best; laps run; and how many sessions preceded qualifying. Gated columns are null when
    fewer sessions than var `practice_min_sessions_before_qualifying` (2) did (one session of
    set-up work misleads more than it tells); the `_ungated` twins keep every value, so the gate
    itself can be measured. -#}
with

practice_results as (
    select * from {{ ref('int_practice_results') }}
),

sessions as (
    select * from {{ ref('int_practice_sessions_before_qualifying') }}
),

race_sessions as (
    select
        race_id,
        count(*) as sessions_before_qualifying,
        max(session_number) as last_session_before_qualifying
    from sessions
    where is_before_qualifying
    group by race_id
),

driver_sessions as (
    select
        practice_results.race_id,
        practice_results.driver_id,
        practice_results.constructor_id,
        practice_results.session_number,
        practice_results.laps,
        -- least() skips nulls: a car without a time must keep a null gap, not the cap
        case
            when practice_results.best_lap_ms is not null
                then least(
                    100.0 * (practice_results.best_lap_ms - practice_results.session_fastest_ms)
                    / practice_results.session_fastest_ms,
                    {{ var('practice_gap_cap_pct') }}
                )
        end as gap_pct
    from practice_results
    inner join sessions
        on practice_results.f1db_race_id = sessions.f1db_race_id
        and practice_results.session_number = sessions.session_number
    where sessions.is_before_qualifying and practice_results.unmapped_reason is null
),

driver_pace as (
    select
        driver_sessions.race_id,
        driver_sessions.driver_id,
        any_value(driver_sessions.constructor_id) as constructor_id,
        min(driver_sessions.gap_pct) as best_gap_pct,
        min(driver_sessions.gap_pct) filter (
            where driver_sessions.session_number = race_sessions.last_session_before_qualifying
        ) as last_session_gap_pct,
        sum(driver_sessions.laps) as laps,
        any_value(race_sessions.sessions_before_qualifying) as sessions_before_qualifying
    from driver_sessions
    inner join race_sessions on driver_sessions.race_id = race_sessions.race_id
    group by driver_sessions.race_id, driver_sessions.driver_id
),

with_team as (
    select
        *,
        min(best_gap_pct) over (partition by race_id, constructor_id) as team_best_gap_pct,
        sessions_before_qualifying
        >= {{ var('practice_min_sessions_before_qualifying') }} as passes_gate
    from driver_pace
),

gated as (
    select
        race_id,
        driver_id,
        cast(sessions_before_qualifying as integer) as practice_sessions_before_qualifying,
    {%- for measure in ['best_gap_pct', 'last_session_gap_pct', 'team_best_gap_pct', 'laps'] %}
        {%- set type = 'integer' if measure == 'laps' else 'double' %}
        cast(case when passes_gate then {{ measure }} end as {{ type }}) as practice_{{ measure }},
        cast({{ measure }} as {{ type }})
            as practice_{{ measure }}_ungated{{ ',' if not loop.last }}
    {%- endfor %}
    from with_team
)

select * from gated
