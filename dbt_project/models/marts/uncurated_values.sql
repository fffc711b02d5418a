{#- Every value in the data that a hand-curated seed does not know yet, so it took the documented
    fallback instead of stopping the weekly build: a finishing status (category `ambiguous`), a
    circuit (type `permanent`), a driver nationality (never a home race). One row per value, with
    the seed file to curate, the first race it appears in and the feature rows it touches; the
    test `uncurated_values_should_be_curated` warns while any row is left. -#}
with

statuses as (
    select * from {{ ref('stg_ergast__status') }}
),

results as (
    select * from {{ ref('stg_ergast__results') }}
),

circuits as (
    select * from {{ ref('stg_ergast__circuits') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

drivers as (
    select * from {{ ref('stg_ergast__drivers') }}
),

entries as (
    select * from {{ ref('int_race_entries') }}
),

status_categories as (
    select * from {{ ref('status_categories') }}
),

circuit_types as (
    select * from {{ ref('circuit_types') }}
),

nationality_countries as (
    select * from {{ ref('nationality_countries') }}
),

known_nationalities as (
    -- a nationality may have several rows (dual nationalities, two spellings of a country)
    select distinct nationality from nationality_countries
),

-- Each lookup lists the values its seed lacks, with every (race, driver) entry the value touches
-- (driver null where the value belongs to a race nobody has entered yet, like a scheduled race;
-- race null where it belongs to no race at all yet).

uncurated_statuses as (
    -- distinct: a 1950s shared drive has two result rows for one entry
    select distinct
        'seeds/status_categories.csv' as seed_file,
        'status' as column_name,
        statuses.status as value,
        results.race_id,
        results.driver_id
    from statuses
    left join status_categories on statuses.status = status_categories.status
    left join results on statuses.status_id = results.status_id
    where status_categories.status is null
),

uncurated_circuits as (
    select
        'seeds/circuit_types.csv' as seed_file,
        'circuit_ref' as column_name,
        circuits.circuit_ref as value,
        races.race_id,
        entries.driver_id
    from circuits
    left join circuit_types on circuits.circuit_ref = circuit_types.circuit_ref
    left join races on circuits.circuit_id = races.circuit_id
    left join entries on races.race_id = entries.race_id
    where circuit_types.circuit_ref is null
),

uncurated_nationalities as (
    select
        'seeds/nationality_countries.csv' as seed_file,
        'nationality' as column_name,
        drivers.nationality as value,
        entries.race_id,
        entries.driver_id
    from drivers
    left join known_nationalities on drivers.nationality = known_nationalities.nationality
    left join entries on drivers.driver_id = entries.driver_id
    where known_nationalities.nationality is null
),

occurrences as (
    select * from uncurated_statuses
    union all
    select * from uncurated_circuits
    union all
    select * from uncurated_nationalities
),

occurrences_in_calendar as (
    select
        occurrences.seed_file,
        occurrences.column_name,
        occurrences.value,
        occurrences.race_id,
        occurrences.driver_id,
        races.year,
        races.round,
        -- race ids are not chronological: the first race is the earliest (year, round)
        row_number() over (
            partition by occurrences.seed_file, occurrences.column_name, occurrences.value
            order by races.year asc nulls last, races.round asc nulls last
        ) as occurrence_order
    from occurrences
    left join races on occurrences.race_id = races.race_id
),

first_occurrences as (
    select
        seed_file,
        column_name,
        value,
        race_id as first_seen_race_id,
        year as first_seen_year,
        round as first_seen_round
    from occurrences_in_calendar
    where occurrence_order = 1
),

affected_rows as (
    select
        seed_file,
        column_name,
        value,
        count(driver_id) as rows_affected
    from occurrences_in_calendar
    group by seed_file, column_name, value
),

uncurated_values as (
    select
        first_occurrences.seed_file,
        first_occurrences.column_name,
        first_occurrences.value,
        first_occurrences.first_seen_race_id,
        first_occurrences.first_seen_year,
        first_occurrences.first_seen_round,
        affected_rows.rows_affected
    from first_occurrences
    inner join affected_rows
        on first_occurrences.seed_file = affected_rows.seed_file
        and first_occurrences.column_name = affected_rows.column_name
        and first_occurrences.value = affected_rows.value
)

select * from uncurated_values
