{#- Where each entrant stands in this race's field on a few key pre-race features: the rank
    within the race and the gap to the race's third-best value (macro `race_relative`). Windows
    over the race's entries of values that are all known before the start, so nothing of the
    race itself enters. Built over the entries spine, so the field is exactly the race's
    entrants; an entrant without a value is null and does not take a rank. The team features are
    placed twice, with and without the team lineage (`team_history_keys`). -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

driver_form as (
    select * from {{ ref('int_driver_form') }}
),

driver_pace_form as (
    select * from {{ ref('int_driver_pace_form') }}
),

constructor_pace_form as (
    select * from {{ ref('int_constructor_pace_form') }}
),

qualifying_pace as (
    select * from {{ ref('int_constructor_qualifying_pace') }}
),

official_standings as (
    select * from {{ ref('int_official_standings_before_race') }}
),

practice_pace as (
    select * from {{ ref('int_driver_practice_pace') }}
),

pre_race_values as (
    select
        entries.race_id,
        entries.driver_id,
        driver_form.driver_podium_rate_10,
        driver_pace_form.driver_points_per_race_10,
        {%- for history in team_history_keys() %}
            constructor_pace_form.constructor_points_per_car_5{{ history.suffix }},
            constructor_pace_form.constructor_mean_start_5{{ history.suffix }},
            qualifying_pace.constructor_qualifying_gap_pct_3{{ history.suffix }},
        {%- endfor %}
        official_standings.driver_standings_points_share,
        practice_pace.practice_best_gap_pct,
        practice_pace.practice_team_best_gap_pct,
        practice_pace.practice_best_gap_pct_ungated,
        practice_pace.practice_team_best_gap_pct_ungated
    from entries
    left join driver_form
        on entries.race_id = driver_form.race_id
        and entries.driver_id = driver_form.driver_id
    left join driver_pace_form
        on entries.race_id = driver_pace_form.race_id
        and entries.driver_id = driver_pace_form.driver_id
    left join constructor_pace_form
        on entries.race_id = constructor_pace_form.race_id
        and entries.constructor_id = constructor_pace_form.constructor_id
    left join qualifying_pace
        on entries.race_id = qualifying_pace.race_id
        and entries.constructor_id = qualifying_pace.constructor_id
    left join official_standings
        on entries.race_id = official_standings.race_id
        and entries.driver_id = official_standings.driver_id
    left join practice_pace
        on entries.race_id = practice_pace.race_id
        and entries.driver_id = practice_pace.driver_id
),

placed_in_field as (
    select
        race_id,
        driver_id,
        {{ race_relative('driver_podium_rate_10') }},
        {{ race_relative('driver_points_per_race_10') }},
        {%- for history in team_history_keys() %}
            {{ race_relative('constructor_points_per_car_5', suffix=history.suffix) }},
            {{ race_relative('constructor_mean_start_5', false, history.suffix) }},
            {{ race_relative('constructor_qualifying_gap_pct_3', false, history.suffix) }},
        {%- endfor %}
        {{ race_relative('driver_standings_points_share') }},
        {{ race_relative('practice_best_gap_pct', higher_is_better=false) }},
        {{ race_relative('practice_team_best_gap_pct', higher_is_better=false) }},
        {{ race_relative('practice_best_gap_pct_ungated', higher_is_better=false) }},
        {{ race_relative('practice_team_best_gap_pct_ungated', higher_is_better=false) }}
    from pre_race_values
)

select * from placed_in_field
