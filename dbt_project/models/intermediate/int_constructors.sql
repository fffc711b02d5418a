{#- Every team a feature row can name: Ergast's constructors, plus teams an entry list names that
    Ergast does not know yet, with a negative id (see `int_drivers` for why). -#}
with

ergast_constructors as (
    select * from {{ ref('stg_ergast__constructors') }}
),

entry_lists as (
    select * from {{ ref('stg_entries__entry_lists') }}
),

new_constructors as (
    select
        entry_lists.constructor_ref,
        coalesce(max(entry_lists.constructor_name), entry_lists.constructor_ref)
            as constructor_name
    from entry_lists
    left join ergast_constructors
        on entry_lists.constructor_ref = ergast_constructors.constructor_ref
    where ergast_constructors.constructor_id is null
    group by entry_lists.constructor_ref
),

constructors as (
    select
        constructor_id,
        constructor_ref,
        constructor_name,
        nationality,
        false as is_from_entry_list
    from ergast_constructors
    union all
    select
        -cast(row_number() over (order by constructor_ref) as integer) as constructor_id,
        constructor_ref,
        constructor_name,
        cast(null as varchar) as nationality,
        true as is_from_entry_list
    from new_constructors
)

select * from constructors
