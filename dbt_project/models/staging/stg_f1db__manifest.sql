with

source as (
    select * from {{ source('f1db', 'manifest') }}
),

renamed as (
    select
        cast(data_version as varchar) as practice_data_version,
        cast(source as varchar) as practice_source,
        cast(attribution as varchar) as attribution
    from source
)

select * from renamed
