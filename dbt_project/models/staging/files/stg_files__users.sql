{{
    config(
        indexes=[{'columns': ['user_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__users'), ['user_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__users')) }}"
    )
}}

-- The `users` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__users') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__users'), ['user_id']) }}

),

latest_versions as (

    select distinct on (user_id) *
    from versions
    order by user_id, {{ latest_version_first() }}

),

final as (

    select
        user_id,
        full_name,
        email,
        team,
        is_active,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
