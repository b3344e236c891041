{{
    config(
        indexes=[{'columns': ['deal_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__deals'), ['deal_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__deals')) }}"
    )
}}

-- The `deals` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff, and no id whose latest version is a delete.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__deals') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__deals'), ['deal_id']) }}

),

latest_versions as (

    select distinct on (deal_id) *
    from versions
    order by deal_id, {{ latest_version_first() }}

),

final as (

    select
        deal_id,
        account_id,
        owner_user_id,
        pipeline_id,
        stage_id,
        deal_name,
        status,
        currency,
        lost_reason,
        lead_source,
        amount,
        expected_close_date,
        created_at,
        closed_at,
        updated_at,
        _file,
        _line

    from latest_versions
    where not is_deleted

)

select * from final
