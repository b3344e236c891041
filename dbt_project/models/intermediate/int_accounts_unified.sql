-- Unified accounts ("customers" of docs/metrics.md), one row per account: every CRM account as of the
-- cutoff, with the billing customers matched to it, plus one billing-only account per unmatched
-- billing customer. match_method is the strongest rule that matched one of its billing customers
-- (crm_account_id, then tax_id, then domain), `unmatched` for a billing-only account, NULL for a
-- CRM account without billing customers.

with

crm_accounts as (

    select * from {{ ref('int_crm_accounts_unioned') }}

),

billing_customers as (

    select * from {{ ref('int_billing_customers_unioned') }}

),

billing_customers_matched as (

    select * from {{ ref('int_billing_customers_matched') }}

),

billing_by_account as (

    select
        account_key,
        array_agg(customer_id order by customer_id) as billing_customer_ids,
        count(*) as billing_customer_count,
        min(
            case match_method
                when 'crm_account_id' then 1
                when 'tax_id' then 2
                when 'domain' then 3
                when 'unmatched' then 4
            end
        ) as best_match_rank
    from billing_customers_matched
    group by account_key

),

crm_based_accounts as (

    select
        crm_account_key as account_key,
        source_system,
        account_id as crm_account_id,
        account_name,
        owner_sales_rep_key,
        tax_id,
        domain,
        industry,
        country,
        employee_count,
        created_at
    from crm_accounts

),

billing_only_accounts as (

    select
        billing_customers_matched.account_key,
        billing_customers.source_system,
        null::text as crm_account_id,
        billing_customers.customer_name as account_name,
        null::text as owner_sales_rep_key,
        billing_customers.tax_id,
        billing_customers.email_domain as domain,
        null::text as industry,
        null::text as country,
        null::integer as employee_count,
        billing_customers.created_at
    from billing_customers_matched
    inner join billing_customers
        on billing_customers_matched.billing_customer_key = billing_customers.billing_customer_key
    where billing_customers_matched.match_method = 'unmatched'

),

accounts as (

    select * from crm_based_accounts
    union all
    select * from billing_only_accounts

),

final as (

    select
        accounts.account_key,
        accounts.source_system,
        accounts.crm_account_id,
        coalesce(billing_by_account.billing_customer_ids, '{}'::text[]) as billing_customer_ids,
        coalesce(billing_by_account.billing_customer_count, 0) as billing_customer_count,
        case billing_by_account.best_match_rank
            when 1 then 'crm_account_id'
            when 2 then 'tax_id'
            when 3 then 'domain'
            when 4 then 'unmatched'
        end as match_method,
        accounts.crm_account_id is not null as has_crm_account,
        coalesce(billing_by_account.billing_customer_count, 0) > 0 as has_billing_customer,
        accounts.account_name,
        accounts.owner_sales_rep_key,
        accounts.tax_id,
        accounts.domain,
        accounts.industry,
        accounts.country,
        accounts.employee_count,
        accounts.created_at
    from accounts
    left join billing_by_account
        on accounts.account_key = billing_by_account.account_key

)

select * from final
