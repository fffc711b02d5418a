with

source as (
    select * from {{ source('ergast', 'sprint_results') }}
),

renamed as (
    select
        cast(resultId as integer) as sprint_result_id,
        cast(raceId as integer) as race_id,
        cast(driverId as integer) as driver_id,
        cast(constructorId as integer) as constructor_id,
        cast(grid as integer) as grid_position,
        cast(positionOrder as integer) as finish_position_order,
        cast(points as double) as points,
        cast(statusId as integer) as status_id
    from source
)

select * from renamed
