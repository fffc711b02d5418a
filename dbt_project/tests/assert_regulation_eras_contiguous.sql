-- regulation_eras must tile the seasons from 1950 with no gaps or overlaps:
-- the first era starts in 1950, each era starts the year after the previous one ends,
-- first_year <= last_year, and only the last (current) era has a null last_year.
-- returns one row per violation.

with eras as (

    select
        era_name,
        first_year,
        last_year,
        lag(last_year) over (order by first_year) as previous_last_year,
        row_number() over (order by first_year) as era_position,
        count(*) over () as era_count
    from {{ ref('regulation_eras') }}

),

violations as (

    select
        era_name,
        first_year,
        last_year,
        'first era does not start in 1950' as problem
    from eras
    where era_position = 1 and first_year <> 1950

    union all

    select
        era_name,
        first_year,
        last_year,
        'gap or overlap with the previous era' as problem
    from eras
    where era_position > 1
        and (previous_last_year is null or first_year <> previous_last_year + 1)

    union all

    select
        era_name,
        first_year,
        last_year,
        'only the last era may have a null last_year' as problem
    from eras
    where last_year is null and era_position < era_count

    union all

    select
        era_name,
        first_year,
        last_year,
        'first_year after last_year' as problem
    from eras
    where last_year is not null and first_year > last_year

    union all

    select
        era_name,
        first_year,
        last_year,
        'first_year is null' as problem
    from eras
    where first_year is null

)

select * from violations
