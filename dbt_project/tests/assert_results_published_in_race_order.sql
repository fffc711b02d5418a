{{ config(severity='error', meta={'raw_files': ['races.csv', 'results.csv']}) }}
{#- Results arrive in calendar order: a race with results may not come after (by year, round) a
    race without any. Otherwise the upcoming race would be the one after the later race, and the
    skipped race, its entries and their form would silently vanish from the features (a feed that
    published round 19 while round 18 is still empty, or a race put in the wrong round). Returns
    each race with results and the earliest race before it that has none. -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

results as (
    select * from {{ ref('stg_ergast__results') }}
),

calendar as (
    select
        races.race_id,
        races.year,
        races.round,
        races.race_date,
        races.race_id in (select results.race_id from results) as has_results
    from races
),

pairs as (
    select
        with_results.race_id,
        with_results.year,
        with_results.round,
        with_results.race_date,
        without_results.race_id as empty_race_id,
        without_results.year as empty_race_year,
        without_results.round as empty_race_round,
        without_results.race_date as empty_race_date,
        -- the earliest empty race: where the gap in the published results begins
        row_number() over (
            partition by with_results.race_id
            order by without_results.year, without_results.round
        ) as gap_order
    from calendar as with_results
    inner join calendar as without_results
        on with_results.year > without_results.year
        or (
            with_results.year = without_results.year
            and with_results.round > without_results.round
        )
    where with_results.has_results and not without_results.has_results
),

out_of_order as (
    select
        race_id,
        year,
        round,
        race_date,
        empty_race_id,
        empty_race_year,
        empty_race_round,
        empty_race_date,
        format(
            'race {} ({} R{}, {}) has results but race {} ({} R{}) before it has none',
            race_id,
            year,
            round,
            race_date,
            empty_race_id,
            empty_race_year,
            empty_race_round
        ) as problem
    from pairs
    where gap_order = 1
)

select * from out_of_order
