-- The race-relative columns of the marts (macro race_relative, via int_race_relative_features)
-- must agree with the feature they place in the race's field. For each ranked feature, with
-- n = the race's entrants that have a value, rank = 1 + the entrants strictly better (ties share
-- a rank) and
-- gap = value - third-best value, signed so that positive = better than the third-best:
--   * the rank is null exactly when the value is null, and 1 <= rank <= n;
--   * entrants with the same value share a rank;
--   * the gap is null exactly when the value is null or n < 3;
--   * rank <= 3 means fewer than three entrants are strictly better, so the entrant is at least
--     as good as the third-best: gap >= 0 (in particular never negative for the leader);
--   * rank = 3 means the entrant ties the third-best value itself: gap = 0 exactly;
--   * rank > 3 means three entrants are strictly better: gap < 0, which the 6-decimal rounding
--     of the gap can turn into 0 for float noise, so the failure is gap > 0.
-- Ties at the top (10, 10, 10, 9) give ranks 1, 1, 1, 4 and gaps 0, 0, 0, -1; ties at third
-- (10, 9, 9, 9) give ranks 1, 2, 2, 2 and gaps 1, 0, 0, 0. Returns one row per violation.
-- A variant placed with a suffix (the `_without_lineage` twins) is checked the same way: its
-- value `<feature><suffix>`, its rank `<feature>_race_rank<suffix>`, its gap likewise.
{%- set features = [
    ('podium_features', 'driver_podium_rate_10', ''),
    ('podium_features', 'driver_points_per_race_10', ''),
    ('podium_features', 'constructor_points_per_car_5', ''),
    ('podium_features', 'constructor_mean_start_5', ''),
    ('podium_features', 'constructor_qualifying_gap_pct_3', ''),
    ('podium_features', 'driver_standings_points_share', ''),
    ('podium_features', 'practice_best_gap_pct', ''),
    ('podium_features', 'practice_team_best_gap_pct', ''),
    ('podium_feature_candidates', 'practice_best_gap_pct_ungated', ''),
    ('podium_feature_candidates', 'practice_team_best_gap_pct_ungated', ''),
    ('podium_feature_candidates', 'constructor_points_per_car_5', '_without_lineage'),
    ('podium_feature_candidates', 'constructor_mean_start_5', '_without_lineage'),
    ('podium_feature_candidates', 'constructor_qualifying_gap_pct_3', '_without_lineage'),
] %}

with

placed as (
    {%- for mart, feature, suffix in features %}
        select
            race_id,
            driver_id,
            '{{ feature }}{{ suffix }}' as feature,
            {{ feature }}{{ suffix }} as feature_value,
            {{ feature }}_race_rank{{ suffix }} as race_rank,
            {{ feature }}_gap_to_third{{ suffix }} as gap_to_third,
            count({{ feature }}{{ suffix }}) over (partition by race_id) as entrants_with_value,
            {{ feature }}_race_rank{{ suffix }} <> min({{ feature }}_race_rank{{ suffix }}) over (
                partition by race_id, {{ feature }}{{ suffix }}
            ) as splits_a_tie
        from {{ ref(mart) }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select *
from placed
where (race_rank is null) <> (feature_value is null)
    or (gap_to_third is null) <> (feature_value is null or entrants_with_value < 3)
    or race_rank not between 1 and entrants_with_value
    or splits_a_tie
    or (race_rank <= 3 and gap_to_third < 0)
    or (race_rank = 3 and gap_to_third <> 0)
    or (race_rank > 3 and gap_to_third > 0)
