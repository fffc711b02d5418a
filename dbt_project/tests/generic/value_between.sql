{#- Fails for every non-null value outside [min_value, max_value]; either bound may be left out
    for a one-sided check (a missing bound compares as null, which never fails). Nulls are left
    to not_null. -#}
{% test value_between(model, column_name, min_value=none, max_value=none) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ 'null' if min_value is none else min_value }}
    or {{ column_name }} > {{ 'null' if max_value is none else max_value }}

{% endtest %}
