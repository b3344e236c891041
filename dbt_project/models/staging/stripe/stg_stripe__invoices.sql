{{ config(indexes=[{'columns': ['invoice_id']}]) }}

-- Stripe invoices as of the cutoff, one row per invoice_id: the latest version updated before the
-- cutoff, and no invoice whose latest version is a deletion (invoice.deleted: a deleted draft).
-- Amounts from the currency's minor unit (macros/stripe.sql). issued_at: when it was finalized
-- (status_transitions.finalized_at), for a draft when it was created; paid_at:
-- status_transitions.paid_at; the subscription: parent.subscription_details.subscription (API
-- 2025-03-31.basil on), else the older `subscription`; the CRM deal: metadata.deal_id.

with

source as (

    select * from {{ landed('stripe', 'invoices') }} as raw_invoices

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where not is_deleted

),

renamed as (

    select
        -- ids
        surviving.record_id::text as invoice_id,
        {{ stripe_ref_id("surviving.doc -> 'customer'") }} as customer_id,
        coalesce(
            surviving.doc -> 'parent' -> 'subscription_details' ->> 'subscription',
            {{ stripe_ref_id("surviving.doc -> 'subscription'") }}
        ) as subscription_id,
        nullif(trim(surviving.doc -> 'metadata' ->> 'deal_id'), '') as deal_id,

        -- text
        surviving.doc ->> 'status' as status,
        upper(trim(surviving.doc ->> 'currency')) as currency,

        -- numbers (minor units)
        surviving.doc ->> 'total' as total_minor_units,
        surviving.doc ->> 'amount_paid' as paid_minor_units,

        -- timestamps (UTC; Stripe gives Unix seconds)
        to_timestamp(
            coalesce(surviving.doc -> 'status_transitions' ->> 'finalized_at', surviving.doc ->> 'created')::bigint
        ) as issued_at,
        to_timestamp((surviving.doc ->> 'due_date')::bigint) as due_at,
        to_timestamp((surviving.doc -> 'status_transitions' ->> 'paid_at')::bigint) as paid_at,
        -- Stripe's whole second (the connector orders the versions of one second within it)
        date_trunc('second', surviving.updated_at) as updated_at

    from surviving

),

final as (

    select
        invoice_id,
        customer_id,
        subscription_id,
        deal_id,
        status,
        currency,
        {{ stripe_amount('total_minor_units', 'currency') }} as amount_total,
        {{ stripe_amount('paid_minor_units', 'currency') }} as amount_paid,
        issued_at,
        due_at,
        paid_at,
        updated_at
    from renamed

)

select * from final
