{#- The numeric features of `podium_features` in long format, one row per (race, driver, feature):
    the shape `feature_drift` bins and compares season by season, whatever the number of features.
    The list comes from the YAML declaration (`feature_columns`), so a feature added to the model
    is watched for drift without touching this file. Nulls are kept: a feature that goes missing
    more often is drift too. -#}
{%- set features = feature_columns() %}

with

podium_features as (
    select * from {{ ref('podium_features') }}
),

feature_values as (
    select
        race_id,
        driver_id,
        year,
        round,
        is_upcoming,
        -- two lists of the same length unnest side by side: one row per feature
        unnest([
            {%- for feature in features %}
                '{{ feature }}'{{ ',' if not loop.last }}
            {%- endfor %}
        ]) as feature_name,
        unnest([
            {%- for feature in features %}
                cast({{ feature }} as double){{ ',' if not loop.last }}
            {%- endfor %}
        ]) as feature_value
    from podium_features
)

select * from feature_values
