{#
    A ratio (docs/metrics.md, "Conventions") is numeric, between 0 and 1, and NULL where its denominator
    is 0. This test finds values outside [0, 1]; `denominator` (optional) names the column or
    expression whose 0 must give NULL and whose non-zero must give a value.
#}
{% test ratio(model, column_name, denominator=none) %}

select *
from {{ model }}
where
    ({{ column_name }} is not null and ({{ column_name }} < 0 or {{ column_name }} > 1))
    {%- if denominator is not none %}
    or (coalesce({{ denominator }}, 0) = 0 and {{ column_name }} is not null)
    or (coalesce({{ denominator }}, 0) <> 0 and {{ column_name }} is null)
    {%- endif %}

{% endtest %}
