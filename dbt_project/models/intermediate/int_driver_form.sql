with

entries as (
    select * from {{ ref('int_race_entries') }}
),

rolled as (
    select
        race_id,
        driver_id,
        {{ lagged_mean('podium', 'driver_id', 3) }} as driver_podium_rate_3,
        {{ lagged_mean('podium', 'driver_id', 5) }} as driver_podium_rate_5,
        {{ lagged_mean('podium', 'driver_id', 10) }} as driver_podium_rate_10,
        {{ lagged_mean('podium', 'driver_id, year') }} as driver_season_podium_rate,
        cast(coalesce(sum(cast(is_start as integer)) over (
            partition by driver_id order by year, round
            rows between unbounded preceding and 1 preceding
        ), 0) as integer) as driver_experience
    from entries
)

select * from rolled
