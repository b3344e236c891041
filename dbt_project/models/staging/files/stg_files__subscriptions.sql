{{
    config(
        indexes=[{'columns': ['subscription_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__subscriptions'), ['subscription_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__subscriptions')) }}"
    )
}}

-- The `subscriptions` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__subscriptions') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__subscriptions'), ['subscription_id']) }}

),

latest_versions as (

    select distinct on (subscription_id) *
    from versions
    order by subscription_id, {{ latest_version_first() }}

),

final as (

    select
        subscription_id,
        customer_id,
        plan,
        status,
        currency,
        mrr_amount,
        started_at,
        canceled_at,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
