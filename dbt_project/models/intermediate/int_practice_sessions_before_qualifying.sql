{#- Which practice sessions of a weekend were held before its first qualifying-type session,
    i.e. are known to a forecast made before qualifying. From 2024 the UTC session start times
    decide (f1db publishes them from then on); before, the `practice_weekend_formats` seed gives
    how many sessions preceded qualifying each season, and a sprint weekend (a race with sprint
    results) had only FP1 before it. A cancelled session has no rows, so it is simply absent. -#}
with

practice_results as (
    select * from {{ ref('int_practice_results') }}
),

f1db_races as (
    select * from {{ ref('stg_f1db__races') }}
),

sprint_results as (
    select * from {{ ref('stg_ergast__sprint_results') }}
),

weekend_formats as (
    select * from {{ ref('practice_weekend_formats') }}
),

sessions_held as (
    select distinct
        f1db_race_id,
        race_id,
        year,
        round,
        session_number,
        session_fastest_ms
    from practice_results
    where session_fastest_ms is not null
),

sprint_weekends as (
    select distinct race_id from sprint_results
),

classified as (
    select
        sessions_held.*,
        case
            when f1db_races.qualifying_starts_at is not null
                or f1db_races.sprint_qualifying_starts_at is not null
                then (case sessions_held.session_number
                    when 1 then f1db_races.free_practice_1_starts_at
                    when 2 then f1db_races.free_practice_2_starts_at
                    when 3 then f1db_races.free_practice_3_starts_at
                    when 4 then f1db_races.free_practice_4_starts_at
                end) < least(
                    f1db_races.pre_qualifying_starts_at,
                    f1db_races.qualifying_1_starts_at,
                    f1db_races.qualifying_starts_at,
                    f1db_races.sprint_qualifying_starts_at
                )
            when sprint_weekends.race_id is not null then sessions_held.session_number = 1
            else sessions_held.session_number <= weekend_formats.sessions_before_qualifying
        end as is_before_qualifying,
        case
            when f1db_races.qualifying_starts_at is not null
                or f1db_races.sprint_qualifying_starts_at is not null then 'session times'
            when sprint_weekends.race_id is not null then 'sprint weekend'
            else 'season format'
        end as decided_by
    from sessions_held
    inner join f1db_races on sessions_held.f1db_race_id = f1db_races.f1db_race_id
    left join sprint_weekends on sessions_held.race_id = sprint_weekends.race_id
    left join weekend_formats
        on sessions_held.year between weekend_formats.first_year
        and coalesce(weekend_formats.last_year, 9999)
)

select * from classified
