{#- Race-level facts known long before the start: regulation era and circuit type. A circuit the
    `circuit_types` seed does not know yet takes the documented fallback type (var
    `unknown_circuit_type`) instead of stopping the build; `uncurated_values` lists it. -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

circuits as (
    select * from {{ ref('stg_ergast__circuits') }}
),

regulation_eras as (
    select * from {{ ref('regulation_eras') }}
),

circuit_types as (
    select * from {{ ref('circuit_types') }}
),

race_context as (
    select
        races.race_id,
        races.race_name,
        circuits.circuit_name,
        circuits.country as circuit_country,
        regulation_eras.era_name as regulation_era,
        coalesce(circuit_types.circuit_type, '{{ var("unknown_circuit_type") }}') as circuit_type
    from races
    inner join circuits on races.circuit_id = circuits.circuit_id
    left join regulation_eras
        on races.year between regulation_eras.first_year
        and coalesce(regulation_eras.last_year, 9999)
    left join circuit_types on circuits.circuit_ref = circuit_types.circuit_ref
)

select * from race_context
