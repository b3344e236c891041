-- Pipeline stages of every CRM source system, one row per stage, with the canonical stage each maps to.

with

unioned as (

    {{ union_staging('stages', [ref('stg_files__stages'), ref('stg_amocrm__stages'), ref('stg_bitrix24__stages'), ref('stg_hubspot__stages')]) }}

),

final as (

    select
        {{ b2b_key('source_system', 'stage_id') }} as stage_key,
        unioned.*
    from unioned

)

select * from final
