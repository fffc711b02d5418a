with

source as (
    select * from {{ source('ergast', 'qualifying') }}
),

renamed as (
    select
        cast(qualifyId as integer) as qualifying_id,
        cast(raceId as integer) as race_id,
        cast(driverId as integer) as driver_id,
        cast(constructorId as integer) as constructor_id,
        cast(position as integer) as qualifying_position,
        q1 as q1_lap_time,
        {{ lap_time_ms('q1') }} as q1_lap_ms,
        q2 as q2_lap_time,
        {{ lap_time_ms('q2') }} as q2_lap_ms,
        q3 as q3_lap_time,
        {{ lap_time_ms('q3') }} as q3_lap_ms
    from source
)

select * from renamed
