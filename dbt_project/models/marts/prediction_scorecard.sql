{#- How good the forecasts that counted were, race by race and season to date: per race, moment,
    model version and replay, the Brier score, the log loss, the top-3 hit rate and the
    probability mass of the forecast chosen by `latest_predictions`, and the Brier scores of its
    P(win) and P(points) (null for versions that served P(podium) only), for races with results. A
    view, so it follows the store: a race scores itself as soon as its results are built.
    Metrics are rounded to 6 decimals: float noise beyond that would make equal scores compare
    unequal. -#}
{{ config(materialized='view') }}

with

latest_predictions as (
    select * from {{ ref('latest_predictions') }}
),

scored_rows as (
    select
        *,
        -- p is clipped away from 0 and 1 so one confident miss costs a lot but never infinity
        least(greatest(podium_probability, 1e-15), 1 - 1e-15) as clipped_probability,
        row_number() over (
            partition by forecast_id
            order by podium_probability desc, driver_id asc
        ) as probability_rank
    from latest_predictions
    where has_result
),

race_scores as (
    select
        race_id,
        year,
        round,
        moment,
        model_name,
        model_version,
        replay,
        replay_id,
        forecast_id,
        predicted_at,
        count(*) as entrants,
        avg(power(podium_probability - actual_podium, 2)) as brier,
        avg(
            -(
                actual_podium * ln(clipped_probability)
                + (1 - actual_podium) * ln(1 - clipped_probability)
            )
        ) as log_loss,
        -- a podium has three finishers (finishing order 1 to 3): one the forecast left out
        -- altogether counts as missed
        count(*) filter (where probability_rank <= 3 and actual_podium = 1) / 3.0 as top3_hit,
        sum(podium_probability) as probability_mass,
        avg(power(win_probability - actual_win, 2)) as win_brier,
        avg(power(points_probability - actual_points, 2)) as points_brier
    from scored_rows
    group by all
),

season_to_date as (
    select
        *,
        count(*) over season_so_far as races_to_date,
        avg(brier) over season_so_far as brier_to_date,
        avg(log_loss) over season_so_far as log_loss_to_date,
        avg(top3_hit) over season_so_far as top3_hit_to_date,
        avg(win_brier) over season_so_far as win_brier_to_date,
        avg(points_brier) over season_so_far as points_brier_to_date
    from race_scores
    window season_so_far as (
        partition by year, moment, model_name, model_version, replay, replay_id
        order by round
        rows between unbounded preceding and current row
    )
),

scorecard as (
    select
        race_id,
        year,
        round,
        moment,
        model_name,
        model_version,
        replay,
        replay_id,
        forecast_id,
        predicted_at,
        entrants,
        round(brier, 6) as brier,
        round(log_loss, 6) as log_loss,
        round(top3_hit, 6) as top3_hit,
        round(probability_mass, 6) as probability_mass,
        races_to_date,
        round(brier_to_date, 6) as brier_to_date,
        round(log_loss_to_date, 6) as log_loss_to_date,
        round(top3_hit_to_date, 6) as top3_hit_to_date,
        round(win_brier, 6) as win_brier,
        round(points_brier, 6) as points_brier,
        round(win_brier_to_date, 6) as win_brier_to_date,
        round(points_brier_to_date, 6) as points_brier_to_date
    from season_to_date
)

select * from scorecard
