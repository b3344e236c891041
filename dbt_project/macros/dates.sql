{#
    The calendar date of a timestamptz in the reporting time zone (docs/metrics.md, "Conventions": a
    "date" is the date on the wall clock of `reporting_timezone`, UTC by default; timestamps stay
    stored in UTC).
#}
{% macro reporting_date(column) -%}
    (({{ column }} at time zone {{ reporting_timezone() }})::date)
{%- endmacro %}

{# The calendar month of a timestamptz in the reporting time zone, as the date of its first day. #}
{% macro reporting_month(column) -%}
    (date_trunc('month', {{ column }} at time zone {{ reporting_timezone() }})::date)
{%- endmacro %}

{# The month (first day) of a date. #}
{% macro month_of(date_expr) -%}
    (date_trunc('month', {{ date_expr }})::date)
{%- endmacro %}

{# The last day of the month that starts on (or contains) a date. #}
{% macro month_end(date_expr) -%}
    ((date_trunc('month', {{ date_expr }}) + interval '1 month' - interval '1 day')::date)
{%- endmacro %}

{# A set-returning expression: every month (first day, as date) from start_month through end_month. #}
{% macro month_series(start_month, end_month) -%}
    generate_series(({{ start_month }})::timestamp, ({{ end_month }})::timestamp, interval '1 month')::date
{%- endmacro %}

{# A set-returning expression: every day from start_date through end_date. #}
{% macro day_series(start_date, end_date) -%}
    generate_series(({{ start_date }})::timestamp, ({{ end_date }})::timestamp, interval '1 day')::date
{%- endmacro %}

{# Days from one timestamptz to another, as a numeric rounded to 4 places (a fraction of a day counts). #}
{% macro days_between(start_at, end_at) -%}
    round((extract(epoch from ({{ end_at }}) - ({{ start_at }})) / 86400)::numeric, 4)
{%- endmacro %}
