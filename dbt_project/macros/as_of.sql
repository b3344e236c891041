{#
    The as-of date of a run and its cutoff (docs/metrics.md, "Conventions"): a run for day D counts
    everything before D + 1 day 00:00 UTC and nothing at or after it.
#}

{% macro as_of_date_literal() -%}
    {%- set as_of = var('as_of_date', none) -%}
    {%- if execute -%}
        {%- if as_of is none or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', as_of | string) -%}
            {{ exceptions.raise_compiler_error(
                "var 'as_of_date' is required, as 'YYYY-MM-DD' (got: " ~ (as_of | string) ~ "). "
                ~ "Pass it with --vars '{as_of_date: 2026-11-26}'."
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{- as_of if as_of is not none else '1970-01-01' -}}
{%- endmacro %}

{# The as-of date, as a SQL date. #}
{% macro as_of_date() -%}
    date '{{ as_of_date_literal() }}'
{%- endmacro %}

{# The first instant not counted: as_of_date + 1 day at 00:00 UTC, as a timestamptz (session time zone irrelevant). #}
{% macro cutoff() -%}
    ((date '{{ as_of_date_literal() }}' + 1)::timestamp at time zone 'UTC')
{%- endmacro %}

{# The month (first day) of the as-of date. #}
{% macro as_of_month() -%}
    (date_trunc('month', date '{{ as_of_date_literal() }}')::date)
{%- endmacro %}

{# The reporting currency code, as a SQL literal (its default is the var's in dbt_project.yml). #}
{% macro reporting_currency() -%}
    '{{ var("reporting_currency") | upper | replace("'", "") }}'
{%- endmacro %}
