{#- Driver pace from the driver's previous entries only, whatever the team: modern points,
    starting slot and finishing order over 5 and 10 entries. -#}
with

entries as (
    select * from {{ ref('int_entry_performance') }}
),

rolled as (
    select
        race_id,
        driver_id,
    {%- for races in [5, 10] %}
        {{ lagged_mean('modern_points', 'driver_id', races) }}
            as driver_points_per_race_{{ races }},
        {{ lagged_mean('start_position', 'driver_id', races) }} as driver_mean_start_{{ races }},
        {{ lagged_mean('finish_position', 'driver_id', races) }}
            as driver_mean_finish_{{ races }}{{ ',' if not loop.last }}
    {%- endfor %}
    from entries
)

select * from rolled
