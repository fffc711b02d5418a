-- each (nationality, country) pair may appear only once in nationality_countries,
-- otherwise an is_home_race join would fan out driver rows. returns the duplicated pairs.

with pairs as (

    select
        trim(nationality) as nationality,
        trim(country) as country,
        count(*) as row_count
    from {{ ref('nationality_countries') }}
    group by 1, 2

)

select
    nationality,
    country,
    row_count
from pairs
where row_count > 1
