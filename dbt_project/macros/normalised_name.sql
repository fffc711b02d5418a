{#- A name reduced to lowercase ASCII letters (accents, spaces, hyphens, dots and apostrophes
    dropped), so "Räikkönen" and "Raikkonen" or "de la Rosa" and "De La Rosa" compare equal. -#}
{%- macro normalised_name(column) -%}
    regexp_replace(lower(strip_accents({{ column }})), '[^a-z]', '', 'g')
{%- endmacro -%}
