{#- The numeric model inputs of `podium_features`: its columns whose YAML `meta` says
    `feature: true` and not `categorical: true`, in the YAML's order. Read from the project's graph,
    so the drift report (`int_feature_values`) follows the same declaration as the model (Python
    reads the manifest written from the same graph). Empty while dbt parses (no graph yet). -#}
{%- macro feature_columns() -%}
    {%- set columns = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.name == 'podium_features' -%}
                {%- for column in node.columns.values() -%}
                    {%- set meta = (column.config or {}).meta or column.meta or {} -%}
                    {%- if meta.feature and not meta.categorical -%}
                        {%- do columns.append(column.name) -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return(columns) -}}
{%- endmacro -%}
