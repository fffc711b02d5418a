{#-
    The mean of an expression over an entity's previous races, never including the current one.

    The relation must have one row per entity per race and carry `year` and `round`, which together
    order races chronologically (Ergast ids do not). The frame ends one row before the current row,
    so the current race's outcome can never leak into its own feature.

    numerator    expression averaged (e.g. `podium`, `modern_points`, `start_position`)
    partition_by the entity whose history is rolled (e.g. `driver_id`, `constructor_id, regulation_era`)
    races        how many previous races; none = all previous races in the partition
    denominator  expression counted as the opportunities; none = one per race row. With it the
                 result is sum(numerator) / sum(denominator) over the window: a per-car mean at
                 team × race grain, where a race with one car weighs half a race with two.

    Nulls in the numerator are skipped (a race without the measurement does not count as zero).
    Returns null when the entity has no previous race in the partition ("no history yet").
-#}
{%- macro lagged_mean(numerator, partition_by, races=none, denominator=none) -%}
    {%- set frame_start = (races ~ ' preceding') if races else 'unbounded preceding' -%}
    {%- set window -%}
        over (partition by {{ partition_by }} order by year, round rows between {{ frame_start }} and 1 preceding)
    {%- endset -%}
    {%- if denominator -%}
        (sum({{ numerator }}) {{ window }} / nullif(sum({{ denominator }}) {{ window }}, 0))
    {%- else -%}
        avg(cast({{ numerator }} as double)) {{ window }}
    {%- endif -%}
{%- endmacro -%}
