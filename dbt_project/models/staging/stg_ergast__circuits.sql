with

source as (
    select * from {{ source('ergast', 'circuits') }}
),

renamed as (
    select
        cast(circuitId as integer) as circuit_id,
        circuitRef as circuit_ref,
        name as circuit_name,
        location,
        country,
        cast(lat as double) as latitude,
        cast(lng as double) as longitude
    from source
)

select * from renamed
