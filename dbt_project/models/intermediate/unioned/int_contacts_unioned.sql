-- CRM contacts of every CRM source system as of the cutoff, one row per contact.

with

unioned as (

    {{ union_staging('contacts', [ref('stg_files__contacts'), ref('stg_amocrm__contacts'), ref('stg_bitrix24__contacts'), ref('stg_hubspot__contacts')]) }}

),

final as (

    select
        {{ b2b_key('source_system', 'contact_id') }} as contact_key,
        {{ b2b_key('source_system', 'account_id', kind='crm') }} as crm_account_key,
        unioned.*
    from unioned
    where created_at < {{ cutoff() }}

)

select * from final
