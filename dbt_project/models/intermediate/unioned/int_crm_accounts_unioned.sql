-- CRM accounts of every CRM source system as of the cutoff, one row per account:
-- accounts created at or after the cutoff do not exist yet.

with

files_accounts as (

    select * from {{ ref('stg_files__accounts') }}

),

unioned as (

    select
        'files' as source_system,
        account_id,
        owner_user_id,
        account_name,
        tax_id,
        domain,
        industry,
        country,
        employee_count,
        created_at,
        updated_at
    from files_accounts

),

final as (

    select
        {{ b2b_key('source_system', 'account_id', kind='crm') }} as crm_account_key,
        {{ b2b_key('source_system', 'owner_user_id') }} as owner_sales_rep_key,
        unioned.*
    from unioned
    where created_at < {{ cutoff() }}

)

select * from final
