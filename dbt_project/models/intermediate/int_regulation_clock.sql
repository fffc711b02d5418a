{#- How far into the current regulation era a race is: races held since the last technical reset
    (the era's first race is 0). A calendar fact, known before the season starts. -#}
with

races as (
    select * from {{ ref('stg_ergast__races') }}
),

race_context as (
    select * from {{ ref('int_race_context') }}
),

clock as (
    select
        races.race_id,
        race_context.regulation_era,
        cast(row_number() over (
            partition by race_context.regulation_era order by races.year, races.round
        ) - 1 as integer) as races_since_regulation_reset
    from races
    inner join race_context on races.race_id = race_context.race_id
)

select * from clock
