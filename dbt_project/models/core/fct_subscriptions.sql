{{
    config(
        indexes=[
            {'columns': ['subscription_key'], 'unique': True},
            {'columns': ['account_key']}
        ]
    )
}}

-- Subscriptions started before the cutoff: one row per subscription, with the unified account of its
-- billing customer. A subscription counts for retention and MRR unless its status is `trialing`; it is
-- active on a date x when it counts, its start date <= x and it has no cancellation date <= x.
-- mrr_amount_reporting converts at the as-of date.

with

subscriptions as (

    select * from {{ ref('int_subscriptions_unioned') }}

),

billing_customers_matched as (

    select * from {{ ref('int_billing_customers_matched') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}

),

subscriptions_dated as (

    select
        *,
        status <> 'trialing' as is_counted,
        {{ reporting_date('started_at') }} as start_date,
        {{ reporting_date('canceled_at') }} as cancel_date
    from subscriptions

),

final as (

    select
        subscriptions_dated.subscription_key,
        subscriptions_dated.source_system,
        subscriptions_dated.subscription_id,
        billing_customers_matched.billing_customer_key,
        billing_customers_matched.account_key,
        subscriptions_dated.customer_id,
        subscriptions_dated.plan,
        subscriptions_dated.status,
        subscriptions_dated.is_counted,
        subscriptions_dated.currency,
        subscriptions_dated.mrr_amount,
        {{ to_reporting('subscriptions_dated.mrr_amount', 'subscriptions_dated.currency', 'fx_rates') }}
            as mrr_amount_reporting,
        subscriptions_dated.started_at,
        subscriptions_dated.start_date,
        subscriptions_dated.canceled_at,
        subscriptions_dated.cancel_date,
        (
            subscriptions_dated.is_counted
            and subscriptions_dated.start_date <= {{ as_of_date() }}
            and (
                subscriptions_dated.cancel_date is null
                or subscriptions_dated.cancel_date > {{ as_of_date() }}
            )
        ) as is_active_on_as_of_date,
        subscriptions_dated.updated_at
    from subscriptions_dated
    left join billing_customers_matched
        on subscriptions_dated.billing_customer_key = billing_customers_matched.billing_customer_key
    left join fx_rates
        on
            subscriptions_dated.currency = fx_rates.currency
            and {{ as_of_date() }} = fx_rates.rate_date

)

select * from final
