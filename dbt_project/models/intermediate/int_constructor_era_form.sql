{#- Team modern points per car within the current regulation era only, from the team's earlier
    races of the era (its lineage's: `team_history_keys`): a reset wipes the slate, as it does for
    the teams. Null at the team's first race of an era. -#}
with

team_races as (
    select * from {{ ref('int_constructor_race_results') }}
),

regulation_clock as (
    select * from {{ ref('int_regulation_clock') }}
),

team_races_in_era as (
    select
        team_races.*,
        regulation_clock.regulation_era
    from team_races
    inner join regulation_clock on team_races.race_id = regulation_clock.race_id
),

rolled as (
    select
        race_id,
        constructor_id,
    {%- for history in team_history_keys() %}
        {{ lagged_mean(
            'modern_points', history.partition_by ~ ', regulation_era', none, 'car_count'
        ) }} as constructor_era_points_per_car{{ history.suffix }}{{ ',' if not loop.last }}
    {%- endfor %}
    from team_races_in_era
)

select * from rolled
