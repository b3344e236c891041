-- CRM users (sales reps) of every CRM source system, one row per user.
-- A new CRM source system plugs in as one more staging relation of union_staging (macros/unioned.sql).

with

unioned as (

    {{ union_staging('sales_reps', [ref('stg_files__users'), ref('stg_amocrm__users'), ref('stg_bitrix24__users'), ref('stg_hubspot__users')]) }}

),

final as (

    select
        {{ b2b_key('source_system', 'user_id') }} as sales_rep_key,
        unioned.*
    from unioned

)

select * from final
