{#- One row per (race, driver) for every race with results: the driver's race collapsed from
    Ergast's car rows. Shared drives (1950s: one driver, several cars in a race) take the team
    and grid slot of the first listed car, the outcome (order, status) of the best-classified
    car and the points of all of them. The one place that rule lives: the entries spine and the
    upcoming race's expected pairs both read it. A status the `status_categories` seed does not
    know yet takes the documented fallback category (var `unknown_status_category`) instead of
    stopping the build; `uncurated_values` lists it for curation. -#}
with

results as (
    select * from {{ ref('stg_ergast__results') }}
),

sprint_results as (
    select * from {{ ref('stg_ergast__sprint_results') }}
),

statuses as (
    select * from {{ ref('stg_ergast__status') }}
),

status_categories as (
    select * from {{ ref('status_categories') }}
),

categorised_results as (
    select
        results.*,
        coalesce(
            status_categories.category, '{{ var("unknown_status_category") }}'
        ) as status_category
    from results
    left join statuses on results.status_id = statuses.status_id
    left join status_categories on statuses.status = status_categories.status
),

collapsed_cars as (
    -- The team and grid slot come from the first listed car: choosing them by finishing order
    -- would let the race's own result pick which team's form applies to the driver.
    select
        race_id,
        driver_id,
        arg_min(constructor_id, result_id) as constructor_id,
        arg_min(grid_position, result_id) as grid_position,
        arg_min(status_category, finish_position_order) as status_category,
        min(finish_position_order) as finish_position_order,
        min(finish_position) as classified_position,
        sum(points) as race_points,
        count(*) as cars_driven
    from categorised_results
    group by race_id, driver_id
),

driver_sprint_points as (
    select
        race_id,
        driver_id,
        sum(points) as sprint_points
    from sprint_results
    group by race_id, driver_id
),

driver_race_results as (
    select
        collapsed_cars.race_id,
        collapsed_cars.driver_id,
        collapsed_cars.constructor_id,
        collapsed_cars.grid_position,
        collapsed_cars.finish_position_order,
        collapsed_cars.classified_position,
        collapsed_cars.status_category,
        case when collapsed_cars.finish_position_order <= 3 then 1 else 0 end as podium,
        collapsed_cars.status_category = 'mechanical' as is_mechanical_dnf,
        collapsed_cars.status_category <> 'did_not_start' as is_start,
        collapsed_cars.race_points,
        coalesce(driver_sprint_points.sprint_points, 0) as sprint_points,
        collapsed_cars.cars_driven
    from collapsed_cars
    left join driver_sprint_points
        on collapsed_cars.race_id = driver_sprint_points.race_id
        and collapsed_cars.driver_id = driver_sprint_points.driver_id
)

select * from driver_race_results
