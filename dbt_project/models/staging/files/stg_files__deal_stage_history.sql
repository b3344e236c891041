{{
    config(
        indexes=[{'columns': ['deal_id', 'stage_id', 'entered_at']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__deal_stage_history'), ['deal_id', 'stage_id', 'entered_at'], has_updated_at=false) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__deal_stage_history')) }}"
    )
}}

-- Stage entries of CRM deals: one row per event (deal_id, stage_id, entered_at); an event
-- delivered twice (the same three values, in one or several files) is one event.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__deal_stage_history') }}
    where {{ latest_versions_only_changed(ref('base_files__deal_stage_history'), ['deal_id', 'stage_id', 'entered_at'], has_updated_at=false) }}

),

deduplicated as (

    select distinct on (deal_id, stage_id, entered_at) *
    from versions
    order by deal_id, stage_id, entered_at, _folder_date nulls first, _file_id, _line

),

final as (

    select
        deal_id,
        stage_id,
        entered_at,
        _file,
        _line

    from deduplicated

)

select * from final
