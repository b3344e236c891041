-- Billing customers of every billing source system as of the cutoff, one row per customer.
-- crm_source_system names the CRM source whose account ids crm_account_id refers to (for the file
-- drop, its own crm/ folder).

with

unioned as (

    {{ union_staging('billing_customers', [ref('stg_files__customers'), ref('stg_stripe__customers')]) }}

),

final as (

    select
        {{ b2b_key('source_system', 'customer_id', kind='billing') }} as billing_customer_key,
        unioned.*
    from unioned
    where created_at < {{ cutoff() }}

)

select * from final
