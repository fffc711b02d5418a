{#- Team pace from the team's previous races only, per car: modern points, starting slot and
    finishing order over 3, 5 and 10 races. -#}
with

team_races as (
    select * from {{ ref('int_constructor_race_results') }}
),

rolled as (
    select
        race_id,
        constructor_id,
    {%- for races in [3, 5, 10] %}
        {{ lagged_mean('modern_points', 'constructor_id', races, 'car_count') }}
            as constructor_points_per_car_{{ races }},
        {{ lagged_mean('start_position_sum', 'constructor_id', races, 'car_count') }}
            as constructor_mean_start_{{ races }},
        {{ lagged_mean('finish_position_sum', 'constructor_id', races, 'car_count') }}
            as constructor_mean_finish_{{ races }}{{ ',' if not loop.last }}
    {%- endfor %}
    from team_races
)

select * from rolled
