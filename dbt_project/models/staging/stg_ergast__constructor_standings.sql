with

source as (
    select * from {{ source('ergast', 'constructor_standings') }}
),

renamed as (
    select
        cast(constructorStandingsId as integer) as constructor_standing_id,
        cast(raceId as integer) as race_id,
        cast(constructorId as integer) as constructor_id,
        cast(points as double) as points,
        cast(position as integer) as championship_position,
        cast(wins as integer) as wins
    from source
)

select * from renamed
