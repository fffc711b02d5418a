with

source as (
    select * from {{ source('ergast', 'races') }}
),

renamed as (
    select
        cast(raceId as integer) as race_id,
        cast(year as integer) as year,
        cast(round as integer) as round,
        cast(circuitId as integer) as circuit_id,
        name as race_name,
        cast(date as date) as race_date,
        cast(time as time) as race_start_time_utc,
        cast(fp1_date as date) as fp1_date,
        cast(fp2_date as date) as fp2_date,
        cast(fp3_date as date) as fp3_date,
        cast(quali_date as date) as qualifying_date,
        cast(quali_time as time) as qualifying_start_time_utc,
        cast(sprint_date as date) as sprint_date,
        url as wikipedia_url
    from source
)

select * from renamed
