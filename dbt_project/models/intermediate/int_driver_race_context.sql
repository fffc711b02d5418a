{#- Who the driver is at this race: age on race day and whether the race is in a home country.
    A nationality the `nationality_countries` seed does not know yet matches no country, so the
    race is not a home race (the documented fallback); `uncurated_values` lists it. -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

drivers as (
    select * from {{ ref('int_drivers') }}
),

race_context as (
    select * from {{ ref('int_race_context') }}
),

nationality_countries as (
    select * from {{ ref('nationality_countries') }}
),

driver_race_context as (
    select
        entries.race_id,
        entries.driver_id,
        -- exact days / mean year length: a birthday the day after the race still counts as younger
        datediff('day', drivers.date_of_birth, entries.race_date) / 365.25 as driver_age_years,
        exists(
            select 1
            from nationality_countries
            where nationality_countries.nationality = drivers.nationality
                and nationality_countries.country = race_context.circuit_country
        ) as is_home_race
    from entries
    -- left: a driver only an entry list knows has no birth date or nationality yet (nulls)
    left join drivers on entries.driver_id = drivers.driver_id
    inner join race_context on entries.race_id = race_context.race_id
)

select * from driver_race_context
