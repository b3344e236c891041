{{
    config(
        indexes=[{'columns': ['account_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__accounts'), ['account_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__accounts')) }}"
    )
}}

-- The `accounts` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff, and no id whose latest version is a delete.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__accounts') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__accounts'), ['account_id']) }}

),

latest_versions as (

    select distinct on (account_id) *
    from versions
    order by account_id, {{ latest_version_first() }}

),

final as (

    select
        account_id,
        owner_user_id,
        account_name,
        tax_id,
        domain,
        industry,
        country,
        employee_count,
        created_at,
        updated_at,
        _file,
        _line

    from latest_versions
    where not is_deleted

)

select * from final
