{{
    config(
        indexes=[{'columns': ['activity_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__activities'), ['activity_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__activities')) }}"
    )
}}

-- The `activities` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff, and no id whose latest version is a delete.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__activities') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__activities'), ['activity_id']) }}

),

latest_versions as (

    select distinct on (activity_id) *
    from versions
    order by activity_id, {{ latest_version_first() }}

),

final as (

    select
        activity_id,
        deal_id,
        account_id,
        contact_id,
        owner_user_id,
        channel,
        occurred_at,
        updated_at,
        _file,
        _line

    from latest_versions
    where not is_deleted

)

select * from final
