{#- Has the world the model learns from moved? The population stability index (PSI) of every
    numeric feature, season by season, against the seasons the model trains on. The reference is
    the `drift_reference_seasons` seasons before the current one (the latest with results); its
    deciles fix each feature's bins, and nulls are a bin of their own. Each reference season is
    compared too, as the yardstick of ordinary season-to-season movement; the current season
    counts its raced rows and the upcoming race's, which the next forecast is made from.
    PSI = sum over bins of (a - e) * ln(a / e), a and e the season's and the reference's shares,
    each floored at 1e-4 so an empty bin weighs a lot but not infinitely. -#}
{%- set reference_seasons = var('drift_reference_seasons', 10) -%}
{%- set psi_threshold = var('drift_psi_threshold', 0.2) %}

with

feature_values as (
    select * from {{ ref('int_feature_values') }}
),

current_season as (
    select max(year) as year
    from feature_values
    where not is_upcoming
),

scoped_values as (
    select
        feature_values.feature_name,
        feature_values.year,
        feature_values.feature_value,
        feature_values.year = current_season.year as is_current_season,
        feature_values.year < current_season.year as is_reference
    from feature_values
    cross join current_season
    where feature_values.year between current_season.year - {{ reference_seasons }}
        and current_season.year
),

reference_window as (
    select
        min(year) as first_season,
        max(year) as last_season
    from scoped_values
    where is_reference
),

features as (
    select distinct feature_name
    from scoped_values
),

deciles as (
    select
        feature_name,
        quantile_disc(
            feature_value, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        ) as decile_values
    from scoped_values
    where is_reference and feature_value is not null
    group by feature_name
),

-- tied deciles (a rate that is 0 for most drivers) merge into one edge, hence fewer bins
edges as (
    select distinct
        feature_name,
        unnest(decile_values) as edge
    from deciles
),

-- bin n holds the values in (edge n-1, edge n]; the last bin everything above the top edge;
-- bin 0 is the nulls
value_bins as (
    select
        feature_name,
        cast(row_number() over (partition by feature_name order by edge) as integer) as bin,
        coalesce(
            lag(edge) over (partition by feature_name order by edge),
            cast('-infinity' as double)
        ) as lower_edge,
        edge as upper_edge
    from edges
),

top_bins as (
    select
        features.feature_name,
        cast(count(edges.edge) + 1 as integer) as bin,
        coalesce(max(edges.edge), cast('-infinity' as double)) as lower_edge,
        cast('infinity' as double) as upper_edge
    from features
    left join edges
        on features.feature_name = edges.feature_name
    group by features.feature_name
),

bins as (
    select * from value_bins
    union all
    select * from top_bins
    union all
    select
        feature_name,
        0 as bin,
        null as lower_edge,
        null as upper_edge
    from features
),

binned_values as (
    select
        scoped_values.feature_name,
        scoped_values.year,
        scoped_values.is_reference,
        bins.bin
    from scoped_values
    inner join bins
        on scoped_values.feature_name = bins.feature_name
        and scoped_values.feature_value > bins.lower_edge
        and scoped_values.feature_value <= bins.upper_edge
    union all
    select
        feature_name,
        year,
        is_reference,
        0 as bin
    from scoped_values
    where feature_value is null
),

reference_shares as (
    select
        feature_name,
        bin,
        count(*) / sum(count(*)) over (partition by feature_name) as share
    from binned_values
    where is_reference
    group by feature_name, bin
),

season_shares as (
    select
        feature_name,
        year,
        bin,
        count(*) / sum(count(*)) over (partition by feature_name, year) as share
    from binned_values
    group by feature_name, year, bin
),

seasons as (
    select
        feature_name,
        year,
        count(*) as rows
    from binned_values
    group by feature_name, year
),

-- every bin of every season, a bin the season (or the reference) leaves empty included
bin_shares as (
    select
        seasons.feature_name,
        seasons.year,
        greatest(coalesce(season_shares.share, 0), 1e-4) as actual_share,
        greatest(coalesce(reference_shares.share, 0), 1e-4) as expected_share
    from seasons
    inner join bins
        on seasons.feature_name = bins.feature_name
    left join season_shares
        on seasons.feature_name = season_shares.feature_name
        and seasons.year = season_shares.year
        and bins.bin = season_shares.bin
    left join reference_shares
        on seasons.feature_name = reference_shares.feature_name
        and bins.bin = reference_shares.bin
),

stability as (
    select
        feature_name,
        year,
        sum((actual_share - expected_share) * ln(actual_share / expected_share)) as psi
    from bin_shares
    group by feature_name, year
),

feature_drift as (
    select
        stability.feature_name,
        stability.year,
        seasons.rows,
        round(stability.psi, 6) as psi,
        stability.psi > {{ psi_threshold }} as is_drifted,
        reference_window.first_season as reference_first_season,
        reference_window.last_season as reference_last_season,
        stability.year = current_season.year as is_current_season
    from stability
    inner join seasons
        on stability.feature_name = seasons.feature_name
        and stability.year = seasons.year
    cross join reference_window
    cross join current_season
)

select * from feature_drift
