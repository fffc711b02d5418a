{#- Team form from the team's previous races (its lineage's: `team_history_keys`), at team × race
    grain. -#}
with

team_races as (
    select * from {{ ref('int_constructor_race_results') }}
),

rolled as (
    select
        race_id,
        constructor_id,
    {%- for history in team_history_keys() %}
        {{ lagged_mean('podium_cars', history.partition_by, 3, 'car_count') }}
            as constructor_podium_rate_3{{ history.suffix }},
        {{ lagged_mean('podium_cars', history.partition_by, 5, 'car_count') }}
            as constructor_podium_rate_5{{ history.suffix }},
        {{ lagged_mean('podium_cars', history.partition_by, 10, 'car_count') }}
            as constructor_podium_rate_10{{ history.suffix }},
        {{ lagged_mean('mechanical_dnf_cars', history.partition_by, 5, 'car_count') }}
            as constructor_mechanical_dnf_rate_5{{ history.suffix }}{{ ',' if not loop.last }}
    {%- endfor %}
    from team_races
)

select * from rolled
