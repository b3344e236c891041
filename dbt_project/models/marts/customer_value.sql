-- Potential value of existing customers as of the run: one row per unified account with at least one
-- won deal or a subscription active on the as-of date (docs/metrics.md, marts.customer_value).
-- Open pipeline and MRR convert at the as-of date. Deals count only in the pipelines that count
-- (fct_deals.is_sales_pipeline): both the won deal that makes a customer and the open pipeline.

with

accounts as (

    select * from {{ ref('dim_accounts') }}

),

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

subscriptions as (

    select * from {{ ref('fct_subscriptions') }}

),

won_customers as (

    select distinct account_key
    from deals
    where is_won and account_key is not null

),

active_mrr_by_account as (

    select
        account_key,
        sum(mrr_amount_reporting) as active_mrr
    from subscriptions
    where is_active_on_as_of_date and account_key is not null
    group by account_key

),

open_pipeline_by_account as (

    select
        account_key,
        sum(weighted_amount_reporting) as weighted_open_pipeline
    from deals
    where is_open and account_key is not null
    group by account_key

),

existing_customers as (

    select account_key from won_customers
    union
    select account_key from active_mrr_by_account

),

final as (

    select
        existing_customers.account_key,
        accounts.account_name,
        coalesce(open_pipeline_by_account.weighted_open_pipeline, 0) as weighted_open_pipeline,
        coalesce(active_mrr_by_account.active_mrr, 0) as active_mrr,
        coalesce(open_pipeline_by_account.weighted_open_pipeline, 0)
        + 12 * coalesce(active_mrr_by_account.active_mrr, 0) as potential_contract_value,
        {{ as_of_date() }} as as_of_date
    from existing_customers
    inner join accounts
        on existing_customers.account_key = accounts.account_key
    left join open_pipeline_by_account
        on existing_customers.account_key = open_pipeline_by_account.account_key
    left join active_mrr_by_account
        on existing_customers.account_key = active_mrr_by_account.account_key

)

select * from final
