{{
    config(
        indexes=[
            {'columns': ['billing_customer_key'], 'unique': True}
        ]
    )
}}

-- Billing customers and the unified account each belongs to: one row per billing customer.

with

billing_customers as (

    select * from {{ ref('int_billing_customers_unioned') }}

),

billing_customers_matched as (

    select * from {{ ref('int_billing_customers_matched') }}

),

final as (

    select
        billing_customers.billing_customer_key,
        billing_customers.source_system,
        billing_customers.customer_id,
        billing_customers_matched.account_key,
        billing_customers_matched.match_method,
        billing_customers.crm_account_id,
        billing_customers.customer_name,
        billing_customers.tax_id,
        billing_customers.email_domain,
        billing_customers.currency,
        billing_customers.created_at
    from billing_customers
    inner join billing_customers_matched
        on billing_customers.billing_customer_key = billing_customers_matched.billing_customer_key

)

select * from final
