{{
    config(
        indexes=[{'columns': ['contact_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__contacts'), ['contact_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__contacts')) }}"
    )
}}

-- The `contacts` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff, and no id whose latest version is a delete.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__contacts') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__contacts'), ['contact_id']) }}

),

latest_versions as (

    select distinct on (contact_id) *
    from versions
    order by contact_id, {{ latest_version_first() }}

),

final as (

    select
        contact_id,
        account_id,
        full_name,
        email,
        phone,
        job_title,
        created_at,
        updated_at,
        _file,
        _line

    from latest_versions
    where not is_deleted

)

select * from final
