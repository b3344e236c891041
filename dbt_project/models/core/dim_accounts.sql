{{
    config(
        indexes=[
            {'columns': ['account_key'], 'unique': True},
            {'columns': ['crm_account_id']}
        ]
    )
}}

-- Unified accounts: one row per customer across CRM and billing (docs/metrics.md, "Accounts").

with

accounts as (

    select * from {{ ref('int_accounts_unified') }}

),

sales_reps as (

    select * from {{ ref('int_sales_reps_unioned') }}

),

final as (

    select
        accounts.account_key,
        accounts.source_system,
        accounts.crm_account_id,
        accounts.billing_customer_ids,
        accounts.billing_customer_count,
        accounts.match_method,
        accounts.has_crm_account,
        accounts.has_billing_customer,
        accounts.account_name,
        sales_reps.sales_rep_key as owner_sales_rep_key,
        accounts.tax_id,
        accounts.domain,
        accounts.industry,
        accounts.country,
        accounts.employee_count,
        accounts.created_at
    from accounts
    left join sales_reps
        on accounts.owner_sales_rep_key = sales_reps.sales_rep_key

)

select * from final
