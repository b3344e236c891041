{#
    Keys of the canonical model are namespaced by source system, so that a second CRM or billing
    system can be unioned in without id collisions: '<source_system>:<id>'. Unified accounts
    distinguish CRM accounts from billing-only customers: '<source_system>:crm:<id>' and
    '<source_system>:billing:<id>'.
#}
{% macro b2b_key(source_system, id_column, kind=none) -%}
    case when {{ id_column }} is not null then
        {{ source_system }} || ':' {%- if kind %} || '{{ kind }}:' {%- endif %} || {{ id_column }}
    end
{%- endmacro %}
