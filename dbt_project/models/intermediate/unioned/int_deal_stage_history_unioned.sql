-- Stage entries of deals of every CRM source system, one row per entry event before the cutoff.

with

files_deal_stage_history as (

    select * from {{ ref('stg_files__deal_stage_history') }}

),

unioned as (

    select
        'files' as source_system,
        deal_id,
        stage_id,
        entered_at
    from files_deal_stage_history

),

final as (

    select
        {{ b2b_key('source_system', 'deal_id') }} as deal_key,
        {{ b2b_key('source_system', 'stage_id') }} as stage_key,
        unioned.*
    from unioned
    where entered_at < {{ cutoff() }}

)

select * from final
