{#
    The as-of date of a run and its cutoff (docs/metrics.md, "Conventions"): a run for day D counts
    everything before D + 1 day 00:00 in the reporting time zone and nothing at or after it.
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

{# The first instant not counted: as_of_date + 1 day at 00:00 in the reporting time zone, as a timestamptz (session time zone irrelevant). #}
{% macro cutoff() -%}
    {{ day_start_literal(as_of_date_literal()) }}
{%- endmacro %}

{# The instant day `day` ('YYYY-MM-DD') ends, 00:00 of the next day in the reporting time zone. #}
{% macro day_start_literal(day) -%}
    ((date '{{ day }}' + 1)::timestamp at time zone {{ reporting_timezone() }})
{%- endmacro %}

{# The month (first day) of the as-of date. #}
{% macro as_of_month() -%}
    (date_trunc('month', date '{{ as_of_date_literal() }}')::date)
{%- endmacro %}

{#
    The deployment's settings (docs/metrics.md, "Conventions"), which b2b_pipeline.transform.night_vars
    passes from b2b.yml or B2B_* variables; their defaults are the vars' in dbt_project.yml.
#}

{# The reporting currency code, as a SQL literal. #}
{% macro reporting_currency() -%}
    {{ currency_literal('reporting_currency') }}
{%- endmacro %}

{# The currency fx_rates quote every other currency in, as a SQL literal. #}
{% macro fx_base_currency() -%}
    {{ currency_literal('fx_base_currency') }}
{%- endmacro %}

{% macro currency_literal(name) -%}
    {%- set code = var(name) | string | upper -%}
    {%- if execute and not modules.re.match('^[A-Z]{3}$', code) -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be an ISO 4217 code such as EUR (got: " ~ code ~ ")") }}
    {%- endif -%}
    '{{ code }}'
{%- endmacro %}

{# The reporting time zone (an IANA name), as a SQL literal. #}
{% macro reporting_timezone() -%}
    {%- set zone = var('reporting_timezone', 'UTC') | string -%}
    {%- if execute and not modules.re.match('^[A-Za-z0-9_+/-]+$', zone) -%}
        {{ exceptions.raise_compiler_error("var 'reporting_timezone' must be an IANA time zone such as Europe/Moscow (got: " ~ zone ~ ")") }}
    {%- endif -%}
    '{{ zone }}'
{%- endmacro %}

{#
    The pipeline_ids whose deals count in the sales marts (var sales_pipelines), as a list: empty (the
    default) when every pipeline counts. The var is a list; text given on the command line is a JSON
    list or comma-separated ids.
#}
{% macro sales_pipelines_list() -%}
    {%- set chosen = var('sales_pipelines', []) -%}
    {%- if chosen is string -%}
        {%- set chosen = fromjson(chosen) if chosen.strip().startswith('[') else chosen.split(',') -%}
    {%- endif -%}
    {{- return(chosen | map('string') | map('trim') | reject('equalto', '') | list) -}}
{%- endmacro %}

{# Whether amounts convert through the fx base currency: the reporting currency is not the base. #}
{% macro converts_through_base() -%}
    {{- return(var('reporting_currency') | string | upper != var('fx_base_currency') | string | upper) -}}
{%- endmacro %}

{#
    Whether the deal of pipeline `pipeline_column` counts in the sales marts (docs/metrics.md,
    "Pipelines that count"): every deal when sales_pipelines_list() is empty, else the deals of its
    pipelines (a deal without a pipeline does not count).
#}
{% macro is_sales_pipeline(pipeline_column) -%}
    {%- set chosen = sales_pipelines_list() -%}
    {%- if chosen | length == 0 -%}
        true
    {%- else -%}
        coalesce({{ pipeline_column }} in (
            {%- for pipeline in chosen -%}
                '{{ pipeline | replace("'", "''") }}'{{ ", " if not loop.last }}
            {%- endfor -%}
        ), false)
    {%- endif -%}
{%- endmacro %}
