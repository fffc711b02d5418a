{#- Team pace from the team's previous races only (its lineage's: `team_history_keys`), per car:
    modern points, starting slot and finishing order over 3, 5 and 10 races. -#}
with

team_races as (
    select * from {{ ref('int_constructor_race_results') }}
),

rolled as (
    select
        race_id,
        constructor_id,
    {%- for history in team_history_keys() %}{% set last_key = loop.last %}
    {%- for races in [3, 5, 10] %}
        {{ lagged_mean('modern_points', history.partition_by, races, 'car_count') }}
            as constructor_points_per_car_{{ races }}{{ history.suffix }},
        {{ lagged_mean('start_position_sum', history.partition_by, races, 'car_count') }}
            as constructor_mean_start_{{ races }}{{ history.suffix }},
        {{ lagged_mean('finish_position_sum', history.partition_by, races, 'car_count') }}
            as constructor_mean_finish_{{ races }}{{ history.suffix }}
        {{- ',' if not (loop.last and last_key) }}
    {%- endfor %}
    {%- endfor %}
    from team_races
)

select * from rolled
