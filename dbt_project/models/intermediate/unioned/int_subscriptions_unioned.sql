-- Billing subscriptions of every billing source system that started before the cutoff, one row per
-- subscription. A cancellation at or after the cutoff has not happened yet (canceled_at is NULL).

with

unioned as (

    {{ union_staging(
        'subscriptions',
        [ref('stg_files__subscriptions'), ref('stg_stripe__subscriptions')],
        rename={'canceled_at': 'source_canceled_at'}
    ) }}

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
