{#- Podium probabilities written by `python train.py predict`, with the actual result once known.
    The store is Parquet outside the warehouse file, so rebuilding the warehouse never loses it;
    this view reads it live. Before the first prediction the store is empty and so is the view. -#}
{{ config(materialized='view') }}

{%- set store = source('pitwall_predictions', 'scores') -%}
{%- set pattern = env_var('PITWALL_PREDICTIONS_DIR', 'predictions') ~ '/*/*/*.parquet' -%}
{%- set has_scores = false -%}
{%- if execute -%}
    {%- set found = run_query("select count(*) from glob('" ~ pattern ~ "')") -%}
    {%- set has_scores = found.columns[0].values()[0] > 0 -%}
{%- endif %}

with

scores as (
    {%- if has_scores %}
    select * from {{ store }}
    {%- else %}
    select
        cast(null as integer) as race_id,
        cast(null as integer) as year,
        cast(null as integer) as round,
        cast(null as integer) as driver_id,
        cast(null as integer) as constructor_id,
        cast(null as varchar) as driver_name,
        cast(null as varchar) as constructor_name,
        cast(null as double) as podium_probability,
        cast(null as varchar) as model_name,
        cast(null as varchar) as model_version,
        cast(null as varchar) as model_alias,
        cast(null as timestamptz) as scored_at
    where false
    {%- endif %}
),

features as (
    select * from {{ ref('podium_features') }}
),

scored_with_outcome as (
    select
        scores.race_id,
        scores.year,
        scores.round,
        scores.driver_id,
        scores.constructor_id,
        scores.driver_name,
        scores.constructor_name,
        scores.podium_probability,
        scores.model_name,
        scores.model_version,
        scores.model_alias,
        scores.scored_at,
        features.podium as actual_podium
    from scores
    left join features
        on scores.race_id = features.race_id
        and scores.driver_id = features.driver_id
)

select * from scored_with_outcome
