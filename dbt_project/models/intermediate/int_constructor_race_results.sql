{#- One row per (race, team): the grain at which team features are rolled, so that both cars
    of a team read the same history and neither sees its team-mate's result in the current race.
    `lineage_id` names whose history the race belongs to (`int_team_lineage`). -#}
with

entries as (
    select * from {{ ref('int_entry_performance') }}
),

team_lineage as (
    select * from {{ ref('int_team_lineage') }}
),

team_races as (
    select
        race_id,
        constructor_id,
        year,
        round,
        has_result,
        count(*) as car_count,
        sum(podium) as podium_cars,
        sum(cast(is_mechanical_dnf as integer)) as mechanical_dnf_cars,
        sum(modern_points) as modern_points,
        sum(start_position) as start_position_sum,
        sum(finish_position) as finish_position_sum
    from entries
    group by race_id, constructor_id, year, round, has_result
),

team_races_in_lineage as (
    select
        team_races.race_id,
        team_races.constructor_id,
        -- before it joined its lineage the team is another one under the same Ergast ref
        -- (Renault's 1977-1985 works team), with a history of its own
        case
            when
                team_lineage.lineage_from_season is null
                or team_races.year >= team_lineage.lineage_from_season
                then team_lineage.lineage_id
            else team_races.constructor_id
        end as lineage_id,
        team_races.year,
        team_races.round,
        team_races.has_result,
        team_races.car_count,
        team_races.podium_cars,
        team_races.mechanical_dnf_cars,
        team_races.modern_points,
        team_races.start_position_sum,
        team_races.finish_position_sum
    from team_races
    left join team_lineage on team_races.constructor_id = team_lineage.constructor_id
)

select * from team_races_in_lineage
