{#- f1db driver → Ergast driver, by date of birth and normalised last name; when that leaves
    several candidates, the normalised first name decides. Two spellings differ in where a
    name's parts go, so the last names may also match as whole names ("Juan Pablo" + "Montoya"
    and "Juan" + "Pablo Montoya") or with a suffix ("Sainz Jr." and "Sainz"). An f1db driver left
    with no candidate or with several is not mapped (its practice rows land in
    `int_practice_unmapped_rows`). -#}
with

f1db_drivers as (
    select * from {{ ref('stg_f1db__drivers') }}
),

ergast_drivers as (
    select * from {{ ref('stg_ergast__drivers') }}
),

candidates as (
    select
        f1db_drivers.f1db_driver_id,
        ergast_drivers.driver_id,
        {{ normalised_name('f1db_drivers.first_name') }}
            = {{ normalised_name('ergast_drivers.first_name') }} as first_name_matches
    from f1db_drivers
    inner join ergast_drivers
        on f1db_drivers.date_of_birth = ergast_drivers.date_of_birth
        and (
            {{ normalised_name('f1db_drivers.last_name') }}
                = {{ normalised_name('ergast_drivers.last_name') }}
            or {{ normalised_name("f1db_drivers.first_name || f1db_drivers.last_name") }}
                = {{ normalised_name("ergast_drivers.first_name || ergast_drivers.last_name") }}
            or {{ normalised_name('f1db_drivers.last_name') }}
                in ({{ normalised_name('ergast_drivers.last_name') }} || 'jr',
                    {{ normalised_name('ergast_drivers.last_name') }} || 'sr')
            or {{ normalised_name('ergast_drivers.last_name') }}
                in ({{ normalised_name('f1db_drivers.last_name') }} || 'jr',
                    {{ normalised_name('f1db_drivers.last_name') }} || 'sr')
        )
),

counted as (
    select
        *,
        count(*) over (partition by f1db_driver_id) as candidate_count,
        count(*) filter (where first_name_matches) over (partition by f1db_driver_id)
            as first_name_match_count
    from candidates
),

mapped as (
    select f1db_driver_id, driver_id
    from counted
    where candidate_count = 1 or (first_name_matches and first_name_match_count = 1)
)

select * from mapped
