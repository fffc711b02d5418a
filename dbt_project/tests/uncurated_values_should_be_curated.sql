{{ config(severity='warn', meta={'raw_files': []}) }}
{#- Warns (never fails the build) while a value in the data has no row in its hand-curated seed
    and so took the documented fallback: one row per value, saying which seed to add it to and
    what the value counts as until then. The curator clears the warning by adding the row. -#}
with

uncurated_values as (
    select * from {{ ref('uncurated_values') }}
),

described as (
    select
        *,
        if(
            first_seen_race_id is null,
            'in no race yet',
            format(
                'first seen in race {}, {} R{}',
                first_seen_race_id,
                first_seen_year,
                first_seen_round
            )
        ) as first_seen,
        case column_name
            when 'status' then 'category ''{{ var("unknown_status_category") }}'''
            when 'circuit_ref' then 'circuit type ''{{ var("unknown_circuit_type") }}'''
            else 'never a home race'
        end as fallback
    from uncurated_values
),

to_curate as (
    select
        seed_file,
        column_name,
        value,
        first_seen_race_id,
        rows_affected,
        format(
            '{}: no row for {} ''{}'' ({}; rows affected: {}); until curated it counts as {}',
            seed_file,
            column_name,
            value,
            first_seen,
            rows_affected,
            fallback
        ) as problem
    from described
)

select * from to_curate
