-- Billing subscriptions of every billing source system that started before the cutoff, one row per
-- subscription. A cancellation at or after the cutoff has not happened yet (canceled_at is NULL).

with

files_subscriptions as (

    select * from {{ ref('stg_files__subscriptions') }}

),

unioned as (

    select
        'files' as source_system,
        subscription_id,
        customer_id,
        plan,
        status,
        currency,
        mrr_amount,
        started_at,
        canceled_at as source_canceled_at,
        updated_at
    from files_subscriptions

),

final as (

    select
        {{ b2b_key('source_system', 'subscription_id') }} as subscription_key,
        {{ b2b_key('source_system', 'customer_id', kind='billing') }} as billing_customer_key,
        source_system,
        subscription_id,
        customer_id,
        plan,
        status,
        currency,
        mrr_amount,
        started_at,
        case when source_canceled_at < {{ cutoff() }} then source_canceled_at end as canceled_at,
        updated_at
    from unioned
    where started_at < {{ cutoff() }}

)

select * from final
