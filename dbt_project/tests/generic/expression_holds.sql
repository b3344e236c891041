{# Every row satisfies a boolean SQL expression (NULL counts as a failure unless allowed). #}
{% test expression_holds(model, expression, column_name=none) %}

select *
from {{ model }}
where not coalesce(({{ expression }}), false)

{% endtest %}
