{{
    config(
        indexes=[{'columns': ['stage_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__stages'), ['stage_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__stages')) }}"
    )
}}

-- The `stages` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__stages') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__stages'), ['stage_id']) }}

),

latest_versions as (

    select distinct on (stage_id) *
    from versions
    order by stage_id, {{ latest_version_first() }}

),

final as (

    select
        stage_id,
        pipeline_id,
        stage_name,
        canonical_stage,
        display_order,
        probability,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
