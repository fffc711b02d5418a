with

source as (
    select * from {{ source('ergast', 'manifest') }}
),

renamed as (
    select
        data_version,
        source as data_source,
        cast(loaded_at as timestamptz) as loaded_at
    from source
)

select * from renamed
