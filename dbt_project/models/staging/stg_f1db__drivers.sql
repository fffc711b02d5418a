with

source as (
    select * from {{ source('f1db', 'drivers') }}
),

renamed as (
    select
        id as f1db_driver_id,
        firstName as first_name,
        lastName as last_name,
        cast(dateOfBirth as date) as date_of_birth
    from source
)

select * from renamed
