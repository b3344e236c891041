-- Pipeline stages of every CRM source system, one row per stage, with the canonical stage each maps to.

with

files_stages as (

    select * from {{ ref('stg_files__stages') }}

),

unioned as (

    select
        'files' as source_system,
        stage_id,
        pipeline_id,
        stage_name,
        display_order,
        probability,
        canonical_stage,
        updated_at
    from files_stages

),

final as (

    select
        {{ b2b_key('source_system', 'stage_id') }} as stage_key,
        unioned.*
    from unioned

)

select * from final
