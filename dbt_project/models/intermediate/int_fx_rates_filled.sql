{{
    config(
        indexes=[
            {'columns': ['currency', 'rate_date'], 'unique': True}
        ]
    )
}}

-- The rate of every currency on every day from its first rate through the as-of date, one row per
-- (currency, rate_date): the rate of that date or, where that date has none, the latest earlier one
-- (docs/metrics.md, "Conventions"). Converting is then an equi-join on (currency, event date); the
-- reporting currency converts at 1 (see the to_reporting macro) and needs no rows here.

with

fx_rates as (

    select * from {{ ref('stg_files__fx_rates') }}
    where rate_date <= {{ as_of_date() }}

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

final as (

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

)

select * from final
