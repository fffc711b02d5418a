with

source as (
    select * from {{ source('ergast', 'drivers') }}
),

renamed as (
    select
        cast(driverId as integer) as driver_id,
        driverRef as driver_ref,
        code as driver_code,
        forename as first_name,
        surname as last_name,
        forename || ' ' || surname as driver_name,
        cast(dob as date) as date_of_birth,
        -- the source spells one nationality with a trailing space ('Argentinian ')
        trim(nationality) as nationality
    from source
)

select * from renamed
