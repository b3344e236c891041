{{
    config(
        indexes=[{'columns': ['customer_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__customers'), ['customer_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__customers')) }}"
    )
}}

-- The `customers` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__customers') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__customers'), ['customer_id']) }}

),

latest_versions as (

    select distinct on (customer_id) *
    from versions
    order by customer_id, {{ latest_version_first() }}

),

final as (

    select
        customer_id,
        crm_account_id,
        customer_name,
        tax_id,
        email_domain,
        currency,
        created_at,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
