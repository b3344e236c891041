{{
    config(
        indexes=[{'columns': ['invoice_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__invoices'), ['invoice_id']) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__invoices')) }}"
    )
}}

-- The `invoices` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__invoices') }}
    where
        updated_at < {{ cutoff() }}
        and {{ latest_versions_only_changed(ref('base_files__invoices'), ['invoice_id']) }}

),

latest_versions as (

    select distinct on (invoice_id) *
    from versions
    order by invoice_id, {{ latest_version_first() }}

),

final as (

    select
        invoice_id,
        customer_id,
        subscription_id,
        deal_id,
        status,
        currency,
        amount_total,
        amount_paid,
        issued_at,
        due_at,
        paid_at,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
