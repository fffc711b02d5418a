{#-
    Where an entrant's pre-race feature stands in this race's field: two columns,
    `<column>_race_rank` (1 = best among the entrants with a value) and `<column>_gap_to_third`
    (the value minus the race's third-best value, signed so that positive = better than the
    third-best). This is how a model sees who the favourites are in this particular field.

    Both are windows over the race's rows (one per entrant) of values that are all known before
    the start, so they add no information from the race itself (`int_race_relative_features`). Null where the entrant's
    value is null; the gap is null when fewer than three entrants have a value.

    column           a feature column of the relation, one row per (race, driver)
    higher_is_better false for positions and gaps, where smaller is better
-#}
{%- macro race_relative(column, higher_is_better=true) -%}
    {%- set direction = 'desc' if higher_is_better else 'asc' -%}
    {%- set field -%}
        partition by race_id order by {{ column }} {{ direction }} nulls last
    {%- endset -%}
    case
        when {{ column }} is not null then cast(rank() over ({{ field }}) as integer)
    end as {{ column }}_race_rank,
    {#- rounded: a difference of two averages carries float noise (1e-17 instead of 0) -#}
    round(
    {%- if higher_is_better %}
        {{ column }} - nth_value({{ column }}, 3) over (
            {{ field }} rows between unbounded preceding and unbounded following
        )
    {%- else %}
        nth_value({{ column }}, 3) over (
            {{ field }} rows between unbounded preceding and unbounded following
        ) - {{ column }}
    {%- endif %}, 6) as {{ column }}_gap_to_third
{%- endmacro -%}
