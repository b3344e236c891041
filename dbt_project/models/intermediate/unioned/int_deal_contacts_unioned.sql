-- Contacts involved in deals, of every CRM source system, one row per (deal, contact).

with

unioned as (

    {{ union_staging('deal_contacts', [ref('stg_files__deal_contacts'), ref('stg_amocrm__deal_contacts'), ref('stg_bitrix24__deal_contacts'), ref('stg_hubspot__deal_contacts')]) }}

),

final as (

    select
        {{ b2b_key('source_system', 'deal_id') }} as deal_key,
        {{ b2b_key('source_system', 'contact_id') }} as contact_key,
        unioned.*
    from unioned

)

select * from final
