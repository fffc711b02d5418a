with

source as (
    select * from {{ source('ergast', 'results') }}
),

renamed as (
    select
        cast(resultId as integer) as result_id,
        cast(raceId as integer) as race_id,
        cast(driverId as integer) as driver_id,
        cast(constructorId as integer) as constructor_id,
        cast(number as integer) as car_number,
        cast(grid as integer) as grid_position,
        cast(position as integer) as finish_position,
        positionText as finish_position_text,
        cast(positionOrder as integer) as finish_position_order,
        cast(points as double) as points,
        cast(laps as integer) as laps_completed,
        cast(milliseconds as bigint) as race_time_ms,
        cast(statusId as integer) as status_id
    from source
)

select * from renamed
