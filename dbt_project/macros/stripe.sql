{#
    Stripe amounts (plugins/b2b_pipeline/sources/stripe/MAPPING.md). Every amount of the API is an
    integer in the currency's minor unit (stripe.com/docs/currencies):

      - zero-decimal currencies carry the major unit (10 JPY is 10): BIF CLP DJF GNF JPY KMF KRW
        MGA PYG RWF UGX VND VUV XAF XOF XPF;
      - three-decimal currencies carry thousandths (5.120 KWD is 5120): BHD JOD KWD OMR TND;
      - every other currency two decimals, including the special cases ISK (zero-decimal, but the
        API takes and returns its amounts with two decimals "for backwards compatibility": 5 ISK is
        500), HUF and TWD (paid out whole, but two decimals in the API): all three divide by 100.

    stripe_minor_unit_exponent(currency): the decimals of `currency` (any case) in API amounts.
    stripe_amount(amount, currency): an API amount (integer, text or jsonb text) in the major unit,
    as numeric with the currency's decimals.
#}

{% macro stripe_minor_unit_exponent(currency) -%}
    (case
        when upper({{ currency }}) in (
            'BIF', 'CLP', 'DJF', 'GNF', 'JPY', 'KMF', 'KRW', 'MGA', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'
        ) then 0
        when upper({{ currency }}) in ('BHD', 'JOD', 'KWD', 'OMR', 'TND') then 3
        else 2
    end)
{%- endmacro %}

{% macro stripe_amount(amount, currency) -%}
    round(
        ({{ amount }})::numeric / power(10::numeric, {{ stripe_minor_unit_exponent(currency) }}),
        {{ stripe_minor_unit_exponent(currency) }}
    )
{%- endmacro %}

{#
    stripe_monthly_factor(interval, interval_count): what one billing period of a recurring price
    is a month of, as numeric: month / interval_count, year / (12 × interval_count), and by
    convention a week 52/12 of a month and a day 365/12 of a month (a year of 52 weeks and 365 days).
#}
{% macro stripe_monthly_factor(interval, interval_count) -%}
    (case {{ interval }}
        when 'month' then 1::numeric
        when 'year' then 1::numeric / 12
        when 'week' then 52::numeric / 12
        when 'day' then 365::numeric / 12
    end / greatest(coalesce(({{ interval_count }})::integer, 1), 1))
{%- endmacro %}

{# The id of an object reference that may be expanded (`"cus_..."` or `{"id": "cus_..."}`). #}
{% macro stripe_ref_id(reference) -%}
    (case jsonb_typeof({{ reference }}) when 'object' then ({{ reference }}) ->> 'id' else ({{ reference }}) #>> '{}' end)
{%- endmacro %}
