with

source as (
    select * from {{ source('ergast', 'constructors') }}
),

renamed as (
    select
        cast(constructorId as integer) as constructor_id,
        constructorRef as constructor_ref,
        name as constructor_name,
        trim(nationality) as nationality
    from source
)

select * from renamed
