-- The highest canonical stage each deal reached as of the cutoff (docs/metrics.md, "Canonical deal
-- stages"), one row per deal. A deal reached stage k when its stage history has an entry in a stage
-- of order >= k (skipped stages count as passed), or k <= 6 and it is won, or k = 7 and it is won and
-- its unified account has an invoice paid on or after the deal's close date. Every deal reached
-- `lead`. "Reached" is therefore exactly the stages 1 .. highest_stage_order_reached.

with

deals as (

    select * from {{ ref('int_deals_unioned') }}

),

deal_stage_history as (

    select * from {{ ref('int_deal_stage_history_unioned') }}

),

stages as (

    select * from {{ ref('int_stages_unioned') }}

),

canonical_stages as (

    select * from {{ ref('canonical_stages') }}

),

accounts as (

    select * from {{ ref('int_accounts_unified') }}

),

billing_customers_matched as (

    select * from {{ ref('int_billing_customers_matched') }}

),

invoices as (

    select * from {{ ref('int_invoices_unioned') }}

),

history_highest_orders as (

    select
        deal_stage_history.deal_key,
        max(canonical_stages.stage_order) as highest_history_stage_order
    from deal_stage_history
    inner join stages
        on deal_stage_history.stage_key = stages.stage_key
    inner join canonical_stages
        on stages.canonical_stage = canonical_stages.stage_key
    where canonical_stages.stage_order is not null
    group by deal_stage_history.deal_key

),

account_last_payments as (

    select
        billing_customers_matched.account_key,
        max({{ reporting_date('invoices.paid_at') }}) as last_paid_date
    from invoices
    inner join billing_customers_matched
        on invoices.billing_customer_key = billing_customers_matched.billing_customer_key
    where invoices.is_paid
    group by billing_customers_matched.account_key

),

deals_with_evidence as (

    select
        deals.deal_key,
        deals.status = 'won' as is_won,
        history_highest_orders.highest_history_stage_order,
        coalesce(
            deals.status = 'won'
            and account_last_payments.last_paid_date >= {{ reporting_date('deals.closed_at') }},
            false
        ) as has_payment_after_close
    from deals
    left join history_highest_orders
        on deals.deal_key = history_highest_orders.deal_key
    left join accounts
        on deals.crm_account_key = accounts.account_key
    left join account_last_payments
        on accounts.account_key = account_last_payments.account_key

),

final as (

    select
        deal_key,
        highest_history_stage_order,
        is_won,
        has_payment_after_close,
        greatest(
            1,
            coalesce(highest_history_stage_order, 1),
            case when is_won then 6 else 1 end,
            case when has_payment_after_close then 7 else 1 end
        ) as highest_stage_order_reached
    from deals_with_evidence

)

select * from final
