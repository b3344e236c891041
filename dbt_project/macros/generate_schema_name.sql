{#
    Custom schema names are used verbatim (no target-schema prefix), so the folders land in
    `staging`, `intermediate`, `var('core_schema')` and `var('marts_schema')`.
    Schema names must be lower case (GX and BI tools mishandle quoted mixed-case names).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set schema_name = (custom_schema_name if custom_schema_name is not none else target.schema) | trim -%}
    {%- if not modules.re.match('^[a-z_][a-z0-9_]*$', schema_name) -%}
        {{ exceptions.raise_compiler_error(
            "Schema name '" ~ schema_name ~ "' is not a lower-case identifier ([a-z_][a-z0-9_]*)."
        ) }}
    {%- endif -%}
    {{ schema_name }}
{%- endmacro %}
