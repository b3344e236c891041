{{
    config(
        indexes=[
            {'columns': ['invoice_key'], 'unique': True},
            {'columns': ['account_key']}
        ]
    )
}}

-- Invoices issued before the cutoff: one row per invoice, with the unified account of its billing
-- customer. amount_paid_reporting converts at the paid date (paid invoices only), amount_total_reporting
-- at the issue date.

with

invoices as (

    select * from {{ ref('int_invoices_unioned') }}

),

billing_customers_matched as (

    select * from {{ ref('int_billing_customers_matched') }}

),

subscriptions as (

    select * from {{ ref('int_subscriptions_unioned') }}

),

deals as (

    select * from {{ ref('int_deals_unioned') }}

),

issued_fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}

),

paid_fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}

),

invoices_dated as (

    select
        *,
        {{ reporting_date('issued_at') }} as issued_date,
        {{ reporting_date('paid_at') }} as paid_date
    from invoices

),

final as (

    select
        invoices_dated.invoice_key,
        invoices_dated.source_system,
        invoices_dated.invoice_id,
        billing_customers_matched.billing_customer_key,
        billing_customers_matched.account_key,
        subscriptions.subscription_key,
        deals.deal_key,
        invoices_dated.customer_id,
        invoices_dated.subscription_id,
        invoices_dated.deal_id,
        invoices_dated.status,
        invoices_dated.is_paid,
        invoices_dated.currency,
        invoices_dated.amount_total,
        invoices_dated.amount_paid,
        {{ to_reporting('invoices_dated.amount_total', 'invoices_dated.currency', 'issued_fx') }}
            as amount_total_reporting,
        case
            when invoices_dated.is_paid
                then {{ to_reporting('invoices_dated.amount_paid', 'invoices_dated.currency', 'paid_fx') }}
        end as amount_paid_reporting,
        invoices_dated.issued_at,
        invoices_dated.issued_date,
        invoices_dated.due_at,
        invoices_dated.paid_at,
        invoices_dated.paid_date,
        {{ month_of('invoices_dated.paid_date') }} as paid_month,
        invoices_dated.updated_at
    from invoices_dated
    left join billing_customers_matched
        on invoices_dated.billing_customer_key = billing_customers_matched.billing_customer_key
    left join subscriptions
        on invoices_dated.subscription_key = subscriptions.subscription_key
    left join deals
        on invoices_dated.deal_key = deals.deal_key
    left join issued_fx_rates as issued_fx
        on
            invoices_dated.currency = issued_fx.currency
            and invoices_dated.issued_date = issued_fx.rate_date
    left join paid_fx_rates as paid_fx
        on
            invoices_dated.currency = paid_fx.currency
            and invoices_dated.paid_date = paid_fx.rate_date

)

select * from final
