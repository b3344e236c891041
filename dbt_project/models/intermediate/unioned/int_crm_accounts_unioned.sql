-- CRM accounts of every CRM source system as of the cutoff, one row per account:
-- accounts created at or after the cutoff do not exist yet.

with

unioned as (

    {{ union_staging('crm_accounts', [ref('stg_files__accounts'), ref('stg_amocrm__accounts'), ref('stg_bitrix24__accounts'), ref('stg_hubspot__accounts')]) }}

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
