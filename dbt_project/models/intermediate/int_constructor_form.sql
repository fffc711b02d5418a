with

team_races as (
    select * from {{ ref('int_constructor_race_results') }}
),

rolled as (
    select
        race_id,
        constructor_id,
        {{ lagged_mean('podium_cars', 'constructor_id', 3, 'car_count') }}
            as constructor_podium_rate_3,
        {{ lagged_mean('podium_cars', 'constructor_id', 5, 'car_count') }}
            as constructor_podium_rate_5,
        {{ lagged_mean('podium_cars', 'constructor_id', 10, 'car_count') }}
            as constructor_podium_rate_10,
        {{ lagged_mean('mechanical_dnf_cars', 'constructor_id', 5, 'car_count') }}
            as constructor_mechanical_dnf_rate_5
    from team_races
)

select * from rolled
