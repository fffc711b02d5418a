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
    suffix           places a variant of the feature instead, the relation's column
                     `<column><suffix>` (a `_without_lineage` twin), as
                     `<column>_race_rank<suffix>` and `<column>_gap_to_third<suffix>`: the
                     twin of each of the feature's columns is its name plus the suffix
-#}
{%- macro race_relative(column, higher_is_better=true, suffix='') -%}
    {%- set direction = 'desc' if higher_is_better else 'asc' -%}
    {%- set value = column ~ suffix -%}
    {%- set field -%}
        partition by race_id order by {{ value }} {{ direction }} nulls last
    {%- endset -%}
    case
        when {{ value }} is not null then cast(rank() over ({{ field }}) as integer)
    end as {{ column }}_race_rank{{ suffix }},
    {#- rounded: a difference of two averages carries float noise (1e-17 instead of 0) -#}
    round(
    {%- if higher_is_better %}
        {{ value }} - nth_value({{ value }}, 3) over (
            {{ field }} rows between unbounded preceding and unbounded following
        )
    {%- else %}
        nth_value({{ value }}, 3) over (
            {{ field }} rows between unbounded preceding and unbounded following
        ) - {{ value }}
    {%- endif %}, 6) as {{ column }}_gap_to_third{{ suffix }}
{%- endmacro -%}
