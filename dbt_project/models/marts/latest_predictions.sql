{#- The forecast that counts for each race, moment, model version and replay: the latest one made
    before the moment's cut-off, so a forecast stored after the fact (a re-run once the grid or
    the result was known) is never scored as if it had been made in time. The store keeps every
    forecast; this view only chooses among them. Whole forecasts are chosen by `forecast_id`,
    never rows of two forecasts mixed. Replays are made after the season by design and are
    exempt from the cut-off: the latest forecast of each replay run counts. -#}
{{ config(materialized='view') }}

with

predictions as (
    select * from {{ ref('predictions') }}
),

races as (
    select * from {{ ref('stg_ergast__races') }}
),

race_cutoffs as (
    select
        race_id,
        -- a race without a known start time starts at 00:00 UTC of its day: early rather than
        -- late, so a forecast made on the day of the race never counts as made in time
        timezone(
            'UTC', race_date + coalesce(race_start_time_utc, time '00:00')
        ) as race_start_at,
        -- a qualifying day without a time counts from its start, for the same reason; without
        -- a qualifying date, a day before the race start, when qualifying is usually held
        coalesce(
            timezone(
                'UTC', qualifying_date + coalesce(qualifying_start_time_utc, time '00:00')
            ),
            timezone(
                'UTC', race_date + coalesce(race_start_time_utc, time '00:00')
            ) - interval 24 hour
        ) as qualifying_start_at
    from races
),

forecasts as (
    select
        forecast_id,
        race_id,
        moment,
        model_name,
        model_version,
        replay,
        replay_id,
        max(predicted_at) as predicted_at
    from predictions
    group by forecast_id, race_id, moment, model_name, model_version, replay, replay_id
),

forecasts_with_cutoff as (
    select
        forecasts.*,
        case forecasts.moment
            when 'pre_qualifying' then race_cutoffs.qualifying_start_at
            when 'post_qualifying' then race_cutoffs.race_start_at
        end as cutoff_at
    from forecasts
    left join race_cutoffs
        on forecasts.race_id = race_cutoffs.race_id
),

ranked_forecasts as (
    select
        forecast_id,
        cutoff_at,
        row_number() over (
            partition by race_id, moment, model_name, model_version, replay, replay_id
            order by predicted_at desc, forecast_id desc
        ) as recency_rank
    from forecasts_with_cutoff
    where replay is not null or predicted_at < cutoff_at
),

latest_predictions as (
    select
        predictions.*,
        ranked_forecasts.cutoff_at
    from predictions
    inner join ranked_forecasts
        on predictions.forecast_id = ranked_forecasts.forecast_id
    where ranked_forecasts.recency_rank = 1
)

select * from latest_predictions
