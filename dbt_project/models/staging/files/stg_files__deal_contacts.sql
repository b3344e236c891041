{{
    config(
        indexes=[{'columns': ['deal_id', 'contact_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__deal_contacts'), ['deal_id', 'contact_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__deal_contacts')) }}"
    )
}}

-- The `deal_contacts` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__deal_contacts') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__deal_contacts'), ['deal_id', 'contact_id']) }}

),

latest_versions as (

    select distinct on (deal_id, contact_id) *
    from versions
    order by deal_id, contact_id, {{ latest_version_first() }}

),

final as (

    select
        deal_id,
        contact_id,
        role,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
