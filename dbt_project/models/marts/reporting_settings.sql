-- The settings tonight's marts were built with (docs/metrics.md marts.reporting_settings), one row:
-- the reporting currency of every money column, the fx base currency, the time zone of every date and
-- month, and the CRM pipelines that count as sales. Published with the marts in the same swap, so a
-- reader of the marts always sees the settings of the numbers in front of them.

{%- set pipelines = sales_pipelines_list() %}

with

final as (

    select
        {{ as_of_date() }} as as_of_date,
        {{ reporting_currency() }}::text as reporting_currency,
        {{ fx_base_currency() }}::text as fx_base_currency,
        {{ reporting_timezone() }}::text as reporting_timezone,
        {%- if pipelines %}
        '{{ pipelines | join(", ") | replace("'", "''") }}'::text as sales_pipelines
        {%- else %}
        'all'::text as sales_pipelines
        {%- endif %}

)

select * from final
