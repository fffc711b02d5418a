{{ config(meta={'raw_files': ['constructors.csv', 'races.csv', 'results.csv']}) }}
{#- Every handover in the `team_lineage` seed must match the data: the successor first races
    as the predecessor's continuation in `first_season` (and not the season before, which would
    make the row's season wrong or the two teams rivals), and the predecessor's last race before
    that is in the previous season or earlier in the same one, never after the handover in that
    season. A team cannot succeed itself. A successor `not_in_data_yet` with no race yet is held
    to the predecessor's side only. Returns one row per problem. -#}
with

links as (
    select * from {{ ref('team_lineage') }}
),

results as (
    select * from {{ ref('stg_ergast__results') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

constructors as (
    select * from {{ ref('stg_ergast__constructors') }}
),

team_races as (
    select distinct
        constructors.constructor_ref,
        races.year,
        races.round
    from results
    inner join races on results.race_id = races.race_id
    inner join constructors on results.constructor_id = constructors.constructor_id
),

successors as (
    select
        links.constructor_ref,
        links.predecessor_ref,
        links.first_season,
        links.not_in_data_yet,
        min(team_races.round) filter (
            where team_races.year = links.first_season
        ) as successor_first_round,
        count(team_races.year) filter (
            where team_races.year = links.first_season - 1
        ) > 0 as successor_raced_the_season_before,
        count(team_races.year) > 0 as successor_has_raced
    from links
    left join team_races on links.constructor_ref = team_races.constructor_ref
    group by
        links.constructor_ref, links.predecessor_ref, links.first_season, links.not_in_data_yet
),

handovers as (
    select
        successors.constructor_ref,
        successors.predecessor_ref,
        successors.first_season,
        successors.not_in_data_yet,
        successors.successor_first_round,
        successors.successor_raced_the_season_before,
        successors.successor_has_raced,
        -- a successor with no race yet takes over at the end of first_season
        max(team_races.year) filter (
            where team_races.year < successors.first_season
            or (
                team_races.year = successors.first_season
                and team_races.round < coalesce(successors.successor_first_round, 1000)
            )
        ) as predecessor_last_season,
        max(team_races.round) filter (
            where team_races.year = successors.first_season
        ) as predecessor_last_round_of_first_season
    from successors
    left join team_races on successors.predecessor_ref = team_races.constructor_ref
    group by
        successors.constructor_ref,
        successors.predecessor_ref,
        successors.first_season,
        successors.not_in_data_yet,
        successors.successor_first_round,
        successors.successor_raced_the_season_before,
        successors.successor_has_raced
),

problems as (
    select
        constructor_ref,
        predecessor_ref,
        first_season,
        'a team cannot succeed itself' as problem
    from handovers
    where constructor_ref = predecessor_ref

    union all

    select
        constructor_ref,
        predecessor_ref,
        first_season,
        'the successor has no race in first_season' as problem
    from handovers
    where successor_first_round is null
        and (successor_has_raced or not not_in_data_yet)

    union all

    select
        constructor_ref,
        predecessor_ref,
        first_season,
        'the successor already raced the season before first_season' as problem
    from handovers
    where successor_raced_the_season_before

    union all

    select
        constructor_ref,
        predecessor_ref,
        first_season,
        format(
            'the predecessor''s last race before the handover is in {}',
            coalesce(cast(predecessor_last_season as varchar), 'no season')
        ) as problem
    from handovers
    where predecessor_last_season is null or predecessor_last_season < first_season - 1

    union all

    select
        constructor_ref,
        predecessor_ref,
        first_season,
        'the predecessor still raced in first_season after the successor''s first race' as problem
    from handovers
    where predecessor_last_round_of_first_season >= successor_first_round
)

select * from problems
