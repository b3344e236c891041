{#
    Conversion to the reporting currency (docs/metrics.md, "Conventions"): amount x the fx rate of its
    currency on the event date, or the latest earlier rate (int_fx_rates_filled holds one filled row
    per currency and day). The reporting currency converts at 1; no rate at all gives NULL, which
    the quality gate reports.
#}
{% macro to_reporting(amount, currency, rate) -%}
    case
        when {{ currency }} = {{ reporting_currency() }} then {{ amount }}
        else {{ amount }} * {{ rate }}
    end
{%- endmacro %}
