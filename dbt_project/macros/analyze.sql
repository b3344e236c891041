{#
    Post-hook of every model: refresh the planner statistics of a freshly built table (or of an
    incremental table after an append), so that the models reading it get sane join plans. A view
    has no statistics of its own; the hook does nothing for it.
#}
{% macro analyze_relation() -%}
    {%- if config.get('materialized') in ('table', 'incremental') -%}
        analyze {{ this }}
    {%- else -%}
        select 1 as no_statistics_for_a_view
    {%- endif -%}
{%- endmacro %}
