{{
    config(
        indexes=[
            {'columns': ['currency', 'rate_date'], 'unique': True}
        ]
    )
}}

-- The rate of every currency on every day from its first rate through the as-of date, one row per
-- (currency, rate_date) (docs/metrics.md, "Conventions"): `rate`, the units of the fx base currency
-- (var fx_base_currency) one unit of the currency is worth on that date or, where that date has
-- none, the latest earlier one; and `reporting_rate`, the same for the reporting currency, by the
-- same rule (1 when the reporting currency is the base). An amount converts as
-- amount x rate / reporting_rate (the to_reporting macro): an equi-join on (currency, event date).
-- The reporting currency converts at 1 and needs no rows here; the base currency is at 1 by
-- definition (a row of fx_rates for it is not used), so it has rows only when the reporting currency
-- is another one, on the days that currency has a rate. A day without a reporting_rate has no row:
-- its amounts stay NULL, which the quality gate blocks.


with

fx_rates as (

    select * from {{ ref('stg_files__fx_rates') }}
    where
        rate_date <= {{ as_of_date() }}
        and currency <> {{ fx_base_currency() }}

),

currencies as (

    select
        currency,
        min(rate_date) as first_rate_date
    from fx_rates
    group by currency

),

currency_days as (

    select
        currencies.currency,
        {{ day_series('currencies.first_rate_date', as_of_date()) }} as rate_date
    from currencies

),

days_with_rate_dates as (

    select
        currency_days.currency,
        currency_days.rate_date,
        max(fx_rates.rate_date) over (
            partition by currency_days.currency
            order by currency_days.rate_date
            rows between unbounded preceding and current row
        ) as source_rate_date
    from currency_days
    left join fx_rates
        on
            currency_days.currency = fx_rates.currency
            and currency_days.rate_date = fx_rates.rate_date

),

rates_filled as (

    select
        days_with_rate_dates.currency,
        days_with_rate_dates.rate_date,
        fx_rates.rate,
        days_with_rate_dates.source_rate_date,
        days_with_rate_dates.rate_date <> days_with_rate_dates.source_rate_date as is_filled
    from days_with_rate_dates
    inner join fx_rates
        on
            days_with_rate_dates.currency = fx_rates.currency
            and days_with_rate_dates.source_rate_date = fx_rates.rate_date

),

{% if converts_through_base() %}

reporting_rates as (

    select
        rate_date,
        rate as reporting_rate
    from rates_filled
    where currency = {{ reporting_currency() }}

),

rates_with_base as (

    select * from rates_filled
    where currency <> {{ reporting_currency() }}

    union all

    select
        {{ fx_base_currency() }} as currency,
        rate_date,
        1::numeric as rate,
        rate_date as source_rate_date,
        false as is_filled
    from reporting_rates

),

final as (

    select
        rates_with_base.currency,
        rates_with_base.rate_date,
        rates_with_base.rate,
        reporting_rates.reporting_rate,
        rates_with_base.source_rate_date,
        rates_with_base.is_filled
    from rates_with_base
    inner join reporting_rates
        on rates_with_base.rate_date = reporting_rates.rate_date

)

{% else %}

final as (

    select
        currency,
        rate_date,
        rate,
        1::numeric as reporting_rate,
        source_rate_date,
        is_filled
    from rates_filled

)

{% endif %}

select * from final
