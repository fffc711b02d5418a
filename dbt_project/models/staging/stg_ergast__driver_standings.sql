with

source as (
    select * from {{ source('ergast', 'driver_standings') }}
),

renamed as (
    select
        cast(driverStandingsId as integer) as driver_standing_id,
        cast(raceId as integer) as race_id,
        cast(driverId as integer) as driver_id,
        cast(points as double) as points,
        cast(position as integer) as championship_position,
        cast(wins as integer) as wins
    from source
)

select * from renamed
