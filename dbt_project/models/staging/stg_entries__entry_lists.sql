{#- The user's entry lists, typed. No file is the normal case (the qualifying classification or
    the last race's field is used instead), so the model is then empty with the same columns. -#}
{%- set pattern = env_var('PITWALL_ENTRIES_DIR', 'entries') ~ '/*.csv' -%}
{%- set has_files = false -%}
{%- if execute -%}
    {%- set found = run_query("select count(*) from glob('" ~ pattern ~ "')") -%}
    {%- set has_files = found.columns[0].values()[0] > 0 -%}
{%- endif %}

with

source as (
    {%- if has_files %}
        select * from {{ source('entries', 'entry_lists') }}
    {%- else %}
        select
            cast(null as varchar) as year,
            cast(null as varchar) as round,
            cast(null as varchar) as driver_ref,
            cast(null as varchar) as constructor_ref,
            cast(null as varchar) as driver_name,
            cast(null as varchar) as constructor_name,
            cast(null as varchar) as filename
        where false
    {%- endif %}
),

renamed as (
    select
        cast(year as integer) as year,
        cast(round as integer) as round,
        trim(driver_ref) as driver_ref,
        trim(constructor_ref) as constructor_ref,
        nullif(trim(driver_name), '') as driver_name,
        nullif(trim(constructor_name), '') as constructor_name,
        parse_filename(filename) as source_file
    from source
)

select * from renamed
