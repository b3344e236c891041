{#
    Typing of the raw layer's text columns (docs/raw-layer.md). Raw values passed the loader's
    validation, so these casts only have to agree with the file-drop format of docs/sources.md.
#}

{# ISO 8601 text -> timestamptz. A value without an offset is UTC, whatever the session time zone. #}
{% macro b2b_timestamp(column) -%}
    case
        when nullif(trim({{ column }}), '') is null then null::timestamptz
        when trim({{ column }}) ~ '[Tt ][0-9]{2}.*([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$'
            then trim({{ column }})::timestamptz
        else trim({{ column }})::timestamp at time zone 'UTC'
    end
{%- endmacro %}

{# YYYY-MM-DD text -> date. #}
{% macro b2b_date(column) -%}
    (nullif(trim({{ column }}), '')::date)
{%- endmacro %}

{# Decimal text -> numeric; a decimal comma (from `;`-delimited files) is accepted. #}
{% macro b2b_numeric(column) -%}
    (replace(nullif(trim({{ column }}), ''), ',', '.')::numeric)
{%- endmacro %}

{# Integer text -> integer (a decimal comma or point with zero fraction is accepted). #}
{% macro b2b_integer(column) -%}
    ({{ b2b_numeric(column) }}::integer)
{%- endmacro %}

{# true/1 -> true; false/0/empty/NULL -> false. #}
{% macro b2b_bool(column) -%}
    coalesce(lower(trim({{ column }})) in ('true', '1'), false)
{%- endmacro %}

{# Currency codes compare upper case, without surrounding blanks. #}
{% macro b2b_currency(column) -%}
    upper(trim({{ column }}))
{%- endmacro %}
