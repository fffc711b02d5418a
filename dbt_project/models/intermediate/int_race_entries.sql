{#- One row per (race, driver): every past entry with its podium target, plus the expected
    entrants of the next race with the target null. Shared drives (1950s: one driver, several
    cars in a race) collapse to one entry: team and grid of the first listed car, outcome
    (target, status) of the best-classified car, points of all of them. -#}
with

results as (
    select * from {{ ref('stg_ergast__results') }}
),

sprint_results as (
    select * from {{ ref('stg_ergast__sprint_results') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

statuses as (
    select * from {{ ref('stg_ergast__status') }}
),

status_categories as (
    select * from {{ ref('status_categories') }}
),

upcoming_entrants as (
    select * from {{ ref('int_upcoming_race_entrants') }}
),

categorised_results as (
    select
        results.*,
        status_categories.category as status_category
    from results
    left join statuses on results.status_id = statuses.status_id
    left join status_categories on statuses.status = status_categories.status
),

driver_results as (
    -- A shared drive's team and grid slot are those of the driver's first listed car: choosing
    -- them by finishing order would let the race's own result pick which team's form applies.
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

past_entries as (
    select
        driver_results.race_id,
        driver_results.driver_id,
        driver_results.constructor_id,
        true as has_result,
        driver_results.grid_position,
        driver_results.finish_position_order,
        driver_results.classified_position,
        driver_results.status_category,
        case when driver_results.finish_position_order <= 3 then 1 else 0 end as podium,
        driver_results.status_category = 'mechanical' as is_mechanical_dnf,
        driver_results.status_category <> 'did_not_start' as is_start,
        driver_results.race_points,
        coalesce(driver_sprint_points.sprint_points, 0) as sprint_points,
        driver_results.cars_driven
    from driver_results
    left join driver_sprint_points
        on driver_results.race_id = driver_sprint_points.race_id
        and driver_results.driver_id = driver_sprint_points.driver_id
),

upcoming_entries as (
    select
        race_id,
        driver_id,
        constructor_id,
        false as has_result,
        cast(null as integer) as grid_position,
        cast(null as integer) as finish_position_order,
        cast(null as integer) as classified_position,
        cast(null as varchar) as status_category,
        cast(null as integer) as podium,
        cast(null as boolean) as is_mechanical_dnf,
        cast(null as boolean) as is_start,
        cast(null as double) as race_points,
        cast(null as double) as sprint_points,
        cast(null as bigint) as cars_driven
    from upcoming_entrants
),

entries as (
    select * from past_entries
    union all
    select * from upcoming_entries
),

entries_in_calendar as (
    select
        entries.race_id,
        entries.driver_id,
        entries.constructor_id,
        races.circuit_id,
        races.year,
        races.round,
        races.race_date,
        entries.has_result,
        entries.grid_position,
        entries.finish_position_order,
        entries.classified_position,
        entries.status_category,
        entries.podium,
        entries.is_mechanical_dnf,
        entries.is_start,
        entries.race_points,
        entries.sprint_points,
        entries.cars_driven,
        count(*) over (partition by entries.race_id) as grid_size
    from entries
    inner join races on entries.race_id = races.race_id
)

select * from entries_in_calendar
