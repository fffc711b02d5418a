{#- One row per f1db race, keyed by (year, round) like Ergast. Session starts are UTC timestamps,
    known only from 2024 (f1db fills times from then on); before that only dates, or nothing. -#}
with

source as (
    select * from {{ source('f1db', 'races') }}
),

renamed as (
    select
        cast(id as integer) as f1db_race_id,
        cast(year as integer) as year,
        cast(round as integer) as round,
        cast(date as date) as race_date,
        {%- for session, column in [
            ('free_practice_1', 'freePractice1'),
            ('free_practice_2', 'freePractice2'),
            ('free_practice_3', 'freePractice3'),
            ('free_practice_4', 'freePractice4'),
            ('pre_qualifying', 'preQualifying'),
            ('qualifying_1', 'qualifying1'),
            ('qualifying', 'qualifying'),
            ('sprint_qualifying', 'sprintQualifying'),
            ('sprint_race', 'sprintRace'),
        ] %}
        cast({{ column }}Date as date) + cast({{ column }}Time || ':00' as time)
            as {{ session }}_starts_at{{ ',' if not loop.last }}
    {%- endfor %}
    from source
)

select * from renamed
