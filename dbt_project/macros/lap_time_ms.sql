{#- A lap time written as m:ss.sss (Ergast qualifying) in milliseconds; null for anything else,
    so a missing or malformed time never becomes a fast lap. -#}
{%- macro lap_time_ms(column) -%}
    case
        when regexp_full_match({{ column }}, '\d{1,2}:\d{2}\.\d{1,3}')
            then cast(round(
                60000 * cast(split_part({{ column }}, ':', 1) as integer)
                + 1000 * cast(split_part({{ column }}, ':', 2) as double)
            ) as integer)
    end
{%- endmacro -%}
