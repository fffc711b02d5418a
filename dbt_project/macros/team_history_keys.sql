{#- The keys a team's history is rolled over, with the suffix of the columns each one yields:
    `lineage_id` (`int_team_lineage`), so a renamed or sold team carries on its predecessor's
    history, for the features; and the Ergast `constructor_id` alone, as before the lineage, for
    their `_without_lineage` twins, which let the ablation measure the lineage from one warehouse.
    Every model that rolls a team's history loops over this list, so the twins are the same SQL
    with the other key. -#}
{%- macro team_history_keys() -%}
    {{- return([
        {'partition_by': 'lineage_id', 'suffix': ''},
        {'partition_by': 'constructor_id', 'suffix': '_without_lineage'},
    ]) -}}
{%- endmacro -%}
