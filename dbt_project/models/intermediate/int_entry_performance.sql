{#- Each entry's weekend on scales that compare across eras: modern points for the classified
    finish, the starting slot (a pit-lane start or a missing grid slot counts as the back of the
    grid) and the finishing order capped at the grid size. Outcomes of the race itself: they feed
    only windows over later races. -#}
with

entries as (
    select * from {{ ref('int_race_entries') }}
),

points_scale as (
    select * from {{ ref('modern_points_scale') }}
),

performance as (
    select
        entries.*,
        case
            when not entries.has_result then null
            when entries.grid_position is null or entries.grid_position = 0 then entries.grid_size
            else least(entries.grid_position, entries.grid_size)
        end as start_position,
        case
            when entries.has_result then least(entries.finish_position_order, entries.grid_size)
        end as finish_position,
        case
            when entries.has_result then coalesce(points_scale.points, 0)
        end as modern_points
    from entries
    left join points_scale on entries.classified_position = points_scale.finish_position
)

select * from performance
