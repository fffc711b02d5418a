with

source as (
    select * from {{ source('ergast', 'status') }}
),

renamed as (
    select
        cast(statusId as integer) as status_id,
        status
    from source
)

select * from renamed
