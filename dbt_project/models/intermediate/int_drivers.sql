{#- Every driver a feature row can name: Ergast's drivers, plus drivers an entry list names that
    Ergast does not know yet. Those get a negative id (stable while the entry lists are unchanged)
    so they can never collide with a future Ergast id; once Ergast publishes them, the real id
    replaces it and stored forecasts still match them by `driver_ref`. -#}
with

ergast_drivers as (
    select * from {{ ref('stg_ergast__drivers') }}
),

entry_lists as (
    select * from {{ ref('stg_entries__entry_lists') }}
),

new_drivers as (
    select
        entry_lists.driver_ref,
        coalesce(max(entry_lists.driver_name), entry_lists.driver_ref) as driver_name
    from entry_lists
    left join ergast_drivers on entry_lists.driver_ref = ergast_drivers.driver_ref
    where ergast_drivers.driver_id is null
    group by entry_lists.driver_ref
),

drivers as (
    select
        driver_id,
        driver_ref,
        driver_name,
        date_of_birth,
        nationality,
        false as is_from_entry_list
    from ergast_drivers
    union all
    select
        -cast(row_number() over (order by driver_ref) as integer) as driver_id,
        driver_ref,
        driver_name,
        cast(null as date) as date_of_birth,
        cast(null as varchar) as nationality,
        true as is_from_entry_list
    from new_drivers
)

select * from drivers
