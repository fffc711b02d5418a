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

f1db_names as (
    select
        f1db_driver_id,
        date_of_birth,
        {{ normalised_name('first_name') }} as first_name_key,
        {{ normalised_name('last_name') }} as last_name_key,
        {{ normalised_name('first_name || last_name') }} as full_name_key
    from f1db_drivers
),

ergast_names as (
    select
        driver_id,
        date_of_birth,
        {{ normalised_name('first_name') }} as first_name_key,
        {{ normalised_name('last_name') }} as last_name_key,
        {{ normalised_name('first_name || last_name') }} as full_name_key
    from ergast_drivers
),

candidates as (
    select
        f1db_names.f1db_driver_id,
        ergast_names.driver_id,
        f1db_names.first_name_key = ergast_names.first_name_key as first_name_matches
    from f1db_names
    inner join ergast_names
        on f1db_names.date_of_birth = ergast_names.date_of_birth
        and (
            f1db_names.last_name_key = ergast_names.last_name_key
            or f1db_names.full_name_key = ergast_names.full_name_key
            or f1db_names.last_name_key in (
                ergast_names.last_name_key || 'jr', ergast_names.last_name_key || 'sr'
            )
            or ergast_names.last_name_key in (
                f1db_names.last_name_key || 'jr', f1db_names.last_name_key || 'sr'
            )
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
    select
        f1db_driver_id,
        driver_id
    from counted
    where candidate_count = 1 or (first_name_matches and first_name_match_count = 1)
)

select * from mapped
