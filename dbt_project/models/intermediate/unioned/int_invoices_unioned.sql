{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['invoice_id']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__invoices'), ['invoice_id'], crossing=['issued_at', 'paid_at'], upstream=ref('stg_files__invoices')) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__invoices'), upstream=ref('stg_files__invoices')) }}"
    )
}}

-- Billing invoices of every billing source system issued before the cutoff, one row per invoice.
-- A payment at or after the cutoff has not happened yet: such an invoice is `open`, without paid_at.
-- Incremental: a run recomputes only the invoices that can have changed since the last one, or
-- whose issued_at or paid_at lies between the last cutoff and tonight's (macros/latest_versions.sql).

with

unioned as (

    {{ union_staging(
        'invoices',
        [ref('stg_files__invoices'), ref('stg_stripe__invoices')],
        rename={'status': 'source_status', 'paid_at': 'source_paid_at'},
        where=latest_versions_only_changed(
            ref('base_files__invoices'),
            ['invoice_id'],
            crossing=['issued_at', 'paid_at'],
            upstream=ref('stg_files__invoices')
        )
    ) }}

),

as_of_cutoff as (

    select
        *,
        (source_status = 'paid' and source_paid_at < {{ cutoff() }}) as is_paid
    from unioned
    where issued_at < {{ cutoff() }}

),

final as (

    select
        {{ b2b_key('source_system', 'invoice_id') }} as invoice_key,
        {{ b2b_key('source_system', 'customer_id', kind='billing') }} as billing_customer_key,
        {{ b2b_key('source_system', 'subscription_id') }} as subscription_key,
        {{ b2b_key('crm_source_system', 'deal_id') }} as deal_key,
        source_system,
        invoice_id,
        customer_id,
        subscription_id,
        deal_id,
        case
            when is_paid then 'paid'
            when source_status = 'paid' then 'open'
            else source_status
        end as status,
        is_paid,
        currency,
        amount_total,
        amount_paid,
        issued_at,
        due_at,
        case when is_paid then source_paid_at end as paid_at,
        updated_at
    from as_of_cutoff

)

select * from final
