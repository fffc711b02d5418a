with

entries as (
    select * from {{ ref('int_race_entries') }}
),

rolled as (
    select
        race_id,
        driver_id,
        {{ lagged_mean('podium', 'driver_id, circuit_id') }} as driver_circuit_podium_rate,
        cast(count(*) over (
            partition by driver_id, circuit_id order by year, round
            rows between unbounded preceding and 1 preceding
        ) as integer) as driver_circuit_visits
    from entries
)

select * from rolled
