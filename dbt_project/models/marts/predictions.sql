{#- Every stored podium forecast (`python train.py predict` and `replay`), with the actual result
    once the race has run. The store is Parquet outside the warehouse file, so rebuilding the
    warehouse never loses it; this view reads it live. DuckDB fails on a glob that matches no
    file, so the build first writes an empty, typed `_schema.parquet` into the store
    (`scripts/build_warehouse.py`): the view then reads the live store from the first build on,
    and the first forecast appears without a rebuild. The empty select below is for a build
    without that file (plain `dbt build`). -#}
{{ config(materialized='view') }}

{%- set store_columns = [
    ('forecast_id', 'varchar'),
    ('predicted_at', 'timestamptz'),
    ('moment', 'varchar'),
    ('race_id', 'integer'),
    ('year', 'integer'),
    ('round', 'integer'),
    ('driver_id', 'integer'),
    ('constructor_id', 'integer'),
    ('driver_ref', 'varchar'),
    ('constructor_ref', 'varchar'),
    ('driver_name', 'varchar'),
    ('constructor_name', 'varchar'),
    ('podium_probability', 'double'),
    ('win_probability', 'double'),
    ('points_probability', 'double'),
    ('model_name', 'varchar'),
    ('model_version', 'varchar'),
    ('model_alias', 'varchar'),
    ('entrant_source', 'varchar'),
    ('data_version', 'varchar'),
    ('practice_data_version', 'varchar'),
    ('replay', 'varchar'),
    ('replay_id', 'varchar'),
] -%}
{%- set pattern = env_var('PITWALL_PREDICTIONS_DIR', 'predictions') ~ '/**/*.parquet' -%}
{%- set has_forecasts = false -%}
{%- if execute -%}
    {%- set found = run_query("select count(*) from glob('" ~ pattern ~ "')") -%}
    {%- set has_forecasts = found.columns[0].values()[0] > 0 -%}
{%- endif %}

with

forecasts as (
    {%- if has_forecasts %}
        select
        {%- for name, type in store_columns %}
                cast({{ name }} as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
        from {{ source('pitwall_predictions', 'forecasts') }}
    {%- else %}
        select
        {%- for name, type in store_columns %}
                cast(null as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
        where false
    {%- endif %}
),

features as (
    select * from {{ ref('podium_features') }}
),

races_with_results as (
    select distinct race_id
    from features
    where podium is not null
),

forecasts_with_outcome as (
    select
        forecasts.*,
        -- an entrant the forecast named but who has no result row (did not take part) was not
        -- on the podium: 0 once the race has run, so every row of a forecast is scored
        case
            when races_with_results.race_id is not null
                then coalesce(by_driver_id.podium, by_driver_ref.podium, 0)
        end as actual_podium,
        case
            when races_with_results.race_id is not null
                then coalesce(
                    by_driver_id.finish_position, by_driver_ref.finish_position, 99
                ) = 1
        end::integer as actual_win,
        case
            when races_with_results.race_id is not null
                then coalesce(
                    by_driver_id.finish_position, by_driver_ref.finish_position, 99
                ) <= 10
        end::integer as actual_points,
        races_with_results.race_id is not null as has_result
    from forecasts
    left join races_with_results
        on forecasts.race_id = races_with_results.race_id
    left join features as by_driver_id
        on forecasts.race_id = by_driver_id.race_id
        and forecasts.driver_id = by_driver_id.driver_id
        and forecasts.driver_id > 0
    -- a negative id is a driver not yet in Ergast (a user's entry list): a later build may give
    -- them a real id, so their result is found by their reference instead
    left join features as by_driver_ref
        on forecasts.race_id = by_driver_ref.race_id
        and forecasts.driver_ref = by_driver_ref.driver_ref
        and forecasts.driver_id < 0
)

select * from forecasts_with_outcome
