-- Billing customers of every billing source system as of the cutoff, one row per customer.
-- crm_source_system names the CRM source whose account ids crm_account_id refers to (for the file
-- drop, its own crm/ folder).

with

files_customers as (

    select * from {{ ref('stg_files__customers') }}

),

unioned as (

    select
        'files' as source_system,
        'files' as crm_source_system,
        customer_id,
        crm_account_id,
        customer_name,
        tax_id,
        email_domain,
        currency,
        created_at,
        updated_at
    from files_customers

),

final as (

    select
        {{ b2b_key('source_system', 'customer_id', kind='billing') }} as billing_customer_key,
        unioned.*
    from unioned
    where created_at < {{ cutoff() }}

)

select * from final
