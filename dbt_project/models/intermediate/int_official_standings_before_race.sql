{#- The drivers' and constructors' championships as they stood before the race: the standings after
    the previous race with results (by year, round; for a season opener the previous season's
    last race, so a season opens with last year's final standings). The published standings are
    used when they exist for that race. In a live season the results of a race are often out
    before its standings; reading the last published standings instead would hand the next race
    the table of two races back while its season points already include the last race, so then
    the table is computed from the results: season points up to and including that race (race
    plus sprint), ranked as the championship ranks them (tie broken by countback: most wins, then
    most second places, and so on; drivers still level share the best position).
    `official_standings_source` says which. Null for a driver or team not in those standings. -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

entries as (
    select * from {{ ref('int_race_entries') }}
),

driver_race_results as (
    select * from {{ ref('int_driver_race_results') }}
),

driver_standings as (
    select * from {{ ref('stg_ergast__driver_standings') }}
),

constructor_standings as (
    select * from {{ ref('stg_ergast__constructor_standings') }}
),

races_with_results as (
    select
        races.race_id,
        races.year,
        races.round,
        races.race_id in (select driver_standings.race_id from driver_standings)
            as has_driver_standings,
        races.race_id in (select constructor_standings.race_id from constructor_standings)
            as has_constructor_standings
    from races
    where races.race_id in (select driver_race_results.race_id from driver_race_results)
),

championship_calendar as (
    select
        race_id,
        year,
        round,
        has_driver_standings,
        has_constructor_standings,
        -- the constructors' championship began in 1958: no table is expected before it
        bool_or(has_constructor_standings) over (
            order by year, round rows between unbounded preceding and current row
        ) as has_constructors_championship
    from races_with_results
),

standings_sources as (
    select
        race_id,
        year,
        round,
        has_constructors_championship,
        case
            when
                has_driver_standings
                and (has_constructor_standings or not has_constructors_championship)
                then 'published'
            else 'computed_from_results'
        end as official_standings_source
    from championship_calendar
),

previous_race as (
    select
        races.race_id,
        last_value(standings_sources.race_id ignore nulls) over (
            order by races.year, races.round
            rows between unbounded preceding and 1 preceding
        ) as standings_race_id
    from races
    left join standings_sources on races.race_id = standings_sources.race_id
),

-- Computed standings, only for the races whose published ones are missing.

season_results as (
    select
        standings_sources.race_id as standings_race_id,
        standings_sources.has_constructors_championship,
        driver_race_results.driver_id,
        driver_race_results.constructor_id,
        driver_race_results.race_points + driver_race_results.sprint_points as points,
        driver_race_results.classified_position
    from standings_sources
    inner join races
        on standings_sources.year = races.year
        and standings_sources.round >= races.round
    inner join driver_race_results on races.race_id = driver_race_results.race_id
    where standings_sources.official_standings_source = 'computed_from_results'
),

championship_results as (
    select
        standings_race_id,
        'driver' as championship,
        driver_id as competitor_id,
        points,
        classified_position
    from season_results
    union all
    -- a team scores with all its cars
    select
        standings_race_id,
        'constructor' as championship,
        constructor_id as competitor_id,
        points,
        classified_position
    from season_results
    where has_constructors_championship
),

championship_points as (
    select
        standings_race_id,
        championship,
        competitor_id,
        sum(points) as points
    from championship_results
    group by standings_race_id, championship, competitor_id
),

finish_counts as (
    select
        standings_race_id,
        championship,
        competitor_id,
        classified_position,
        count(*) as finishes
    from championship_results
    where classified_position is not null
    group by standings_race_id, championship, competitor_id, classified_position
),

countback_slots as (
    -- one slot per classified position, so that every competitor's countback has the same length
    select unnest(range(1, max(classified_position) + 1)) as classified_position
    from finish_counts
),

countback as (
    -- fixed-width counts, best position first: text order is the countback order
    select
        championship_points.standings_race_id,
        championship_points.championship,
        championship_points.competitor_id,
        string_agg(
            lpad(cast(coalesce(finish_counts.finishes, 0) as varchar), 4, '0'),
            ''
            order by countback_slots.classified_position
        ) as countback_key
    from championship_points
    cross join countback_slots
    left join finish_counts
        on championship_points.standings_race_id = finish_counts.standings_race_id
        and championship_points.championship = finish_counts.championship
        and championship_points.competitor_id = finish_counts.competitor_id
        and countback_slots.classified_position = finish_counts.classified_position
    group by
        championship_points.standings_race_id,
        championship_points.championship,
        championship_points.competitor_id
),

computed_standings as (
    select
        championship_points.standings_race_id,
        championship_points.championship,
        championship_points.competitor_id,
        championship_points.points,
        cast(rank() over (
            partition by championship_points.standings_race_id, championship_points.championship
            order by championship_points.points desc, countback.countback_key desc nulls last
        ) as integer) as championship_position
    from championship_points
    left join countback
        on championship_points.standings_race_id = countback.standings_race_id
        and championship_points.championship = countback.championship
        and championship_points.competitor_id = countback.competitor_id
),

-- The table after each race with results, from whichever source it has.

published_standings as (
    select
        race_id as standings_race_id,
        'driver' as championship,
        driver_id as competitor_id,
        championship_position,
        points
    from driver_standings
    union all
    select
        race_id as standings_race_id,
        'constructor' as championship,
        constructor_id as competitor_id,
        championship_position,
        points
    from constructor_standings
),

after_race as (
    select
        published_standings.standings_race_id,
        published_standings.championship,
        published_standings.competitor_id,
        published_standings.championship_position,
        published_standings.points
    from published_standings
    inner join standings_sources
        on published_standings.standings_race_id = standings_sources.race_id
    where standings_sources.official_standings_source = 'published'
    union all
    select
        standings_race_id,
        championship,
        competitor_id,
        championship_position,
        points
    from computed_standings
),

championship_table as (
    select
        standings_race_id,
        championship,
        competitor_id,
        championship_position,
        points,
        max(points) over (partition by standings_race_id, championship) as leader_points
    from after_race
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
            as constructor_standings_gap_to_leader,
        standings_sources.official_standings_source
    from entries
    inner join previous_race on entries.race_id = previous_race.race_id
    left join standings_sources on previous_race.standings_race_id = standings_sources.race_id
    left join championship_table as driver_table
        on previous_race.standings_race_id = driver_table.standings_race_id
        and driver_table.championship = 'driver'
        and entries.driver_id = driver_table.competitor_id
    left join championship_table as constructor_table
        on previous_race.standings_race_id = constructor_table.standings_race_id
        and constructor_table.championship = 'constructor'
        and entries.constructor_id = constructor_table.competitor_id
)

select * from standings_before_race
