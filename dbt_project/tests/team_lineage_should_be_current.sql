{{ config(severity='warn', meta={'raw_files': ['constructors.csv', 'results.csv']}) }}
{#- Warns (never fails the build) while a `team_lineage` row marked `not_in_data_yet` needs the
    curator: its reference has arrived in the Ergast data (clear the flag), or its first season
    has results but no team, in the data or an entry list, has that reference, so the link is
    silently unused: the team races under another spelling (fix `constructor_ref`). -#}
with

links as (
    select * from {{ ref('team_lineage') }}
),

ergast_constructors as (
    select * from {{ ref('stg_ergast__constructors') }}
),

constructors as (
    select * from {{ ref('int_constructors') }}
),

results as (
    select * from {{ ref('stg_ergast__results') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

seasons_with_results as (
    select distinct races.year
    from results
    inner join races on results.race_id = races.race_id
),

announced as (
    select
        links.constructor_ref,
        links.first_season,
        ergast_constructors.constructor_id is not null as is_in_ergast,
        constructors.constructor_id is not null as is_known,
        seasons_with_results.year is not null as season_has_results
    from links
    left join ergast_constructors on links.constructor_ref = ergast_constructors.constructor_ref
    left join constructors on links.constructor_ref = constructors.constructor_ref
    left join seasons_with_results on links.first_season = seasons_with_results.year
    where links.not_in_data_yet
),

to_curate as (
    select
        constructor_ref,
        first_season,
        format(
            'team_lineage.csv: {} is in the Ergast data now; set not_in_data_yet to false',
            constructor_ref
        ) as problem
    from announced
    where is_in_ergast

    union all

    select
        constructor_ref,
        first_season,
        format(
            'team_lineage.csv: {} has results but no team is named {}; fix constructor_ref',
            first_season,
            constructor_ref
        ) as problem
    from announced
    where season_has_results and not is_known
)

select * from to_curate
