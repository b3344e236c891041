{#
    Conversion to the reporting currency (docs/metrics.md, "Conventions"): fx_rates quote every
    currency in the fx base currency, so an amount converts as amount x rate(currency) / rate(reporting
    currency), each the rate of the event date or the latest earlier one, the base at 1
    (int_fx_rates_filled holds both per currency and day; `fx` is the alias of its joined row). The
    reporting currency converts at 1; no rate at all, or a zero rate of the reporting currency, gives
    NULL (never a division error), which the quality gate blocks.
#}
{% macro to_reporting(amount, currency, fx) -%}
    case
        when {{ currency }} = {{ reporting_currency() }} then {{ amount }}
        {%- if not converts_through_base() %}
        else {{ amount }} * {{ fx }}.rate
        {%- else %}
        else {{ amount }} * {{ fx }}.rate / nullif({{ fx }}.reporting_rate, 0)
        {%- endif %}
    end
{%- endmacro %}
