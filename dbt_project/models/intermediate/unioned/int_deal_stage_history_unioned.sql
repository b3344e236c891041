{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['deal_id', 'stage_id', 'entered_at']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__deal_stage_history'), ['deal_id', 'stage_id', 'entered_at'], has_updated_at=false, crossing=['entered_at'], upstream=ref('stg_files__deal_stage_history')) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__deal_stage_history'), upstream=ref('stg_files__deal_stage_history')) }}"
    )
}}

-- Stage entries of deals of every CRM source system, one row per entry event before the cutoff.
-- Incremental: a run recomputes only the entries that can have changed since the last one, or whose
-- entered_at lies between the last cutoff and tonight's (macros/latest_versions.sql).

with

unioned as (

    {{ union_staging(
        'deal_stage_history',
        [ref('stg_files__deal_stage_history'), ref('stg_amocrm__deal_stage_history'), ref('stg_bitrix24__deal_stage_history'), ref('stg_hubspot__deal_stage_history')],
        where=latest_versions_only_changed(
            ref('base_files__deal_stage_history'),
            ['deal_id', 'stage_id', 'entered_at'],
            has_updated_at=false,
            crossing=['entered_at'],
            upstream=ref('stg_files__deal_stage_history')
        )
    ) }}

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
