{{ config(indexes=[{'columns': ['subscription_id']}]) }}

-- Stripe subscriptions as of the cutoff, one row per subscription_id: the latest version updated
-- before the cutoff. MRR: the sum over the items of unit_amount × quantity, from the currency's
-- minor unit (macros/stripe.sql), per month of the price's recurring interval (month /
-- interval_count, year / 12, a week 52/12 and a day 365/12 of a month), rounded to the currency's
-- decimals. Statuses: trialing, active, past_due and canceled as they are; incomplete (the first
-- invoice not paid yet) and paused (a trial ended without a payment method) as trialing: not yet
-- paying, so not counted; unpaid (retries exhausted, the subscription still in place) as past_due;
-- incomplete_expired (the first payment never came: it never paid) as trialing too, so that it is
-- never counted (as canceled it would count as a customer until it ended, then churn). A metered
-- price's items count 0 (usage billed after the fact). canceled_at: when it ended
-- (ended_at, else canceled_at) for an ended subscription, else a scheduled end (cancel_at).

with

source as (

    select * from {{ landed('stripe', 'subscriptions') }} as raw_subscriptions

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where not is_deleted

),

items as (

    select
        surviving.record_id,
        sum(
            coalesce(
                (item.value -> 'price' ->> 'unit_amount')::numeric,
                (item.value -> 'price' ->> 'unit_amount_decimal')::numeric,
                0
            )
            * coalesce((item.value ->> 'quantity')::numeric, 1)
            * {{ stripe_monthly_factor(
                "item.value -> 'price' -> 'recurring' ->> 'interval'",
                "item.value -> 'price' -> 'recurring' ->> 'interval_count'"
            ) }}
        ) as monthly_minor_units
    from surviving
    cross join
        lateral jsonb_array_elements(
            coalesce(surviving.doc -> 'items' -> 'data', '[]'::jsonb)
        ) as item (value)
    -- a metered price bills the usage reported after the fact: no recurring amount to count
    where (item.value -> 'price' -> 'recurring' ->> 'usage_type') is distinct from 'metered'
    group by surviving.record_id

),

renamed as (

    select
        -- ids
        surviving.record_id::text as subscription_id,
        {{ stripe_ref_id("surviving.doc -> 'customer'") }} as customer_id,

        -- text
        surviving.doc -> 'items' -> 'data' -> 0 -> 'price' ->> 'nickname' as plan,
        surviving.doc ->> 'status' as source_status,
        upper(trim(surviving.doc ->> 'currency')) as currency,

        -- numbers
        coalesce(items.monthly_minor_units, 0) as monthly_minor_units,

        -- timestamps (UTC; Stripe gives Unix seconds)
        to_timestamp((surviving.doc ->> 'start_date')::bigint) as started_at,
        to_timestamp((surviving.doc ->> 'ended_at')::bigint) as ended_at,
        to_timestamp((surviving.doc ->> 'canceled_at')::bigint) as source_canceled_at,
        to_timestamp((surviving.doc ->> 'cancel_at')::bigint) as cancel_at,
        -- Stripe's whole second (the connector orders the versions of one second within it)
        date_trunc('second', surviving.updated_at) as updated_at

    from surviving
    left join items
        on surviving.record_id = items.record_id

),

final as (

    select
        subscription_id,
        customer_id,
        plan,
        case source_status
            when 'incomplete' then 'trialing'
            when 'paused' then 'trialing'
            when 'unpaid' then 'past_due'
            when 'incomplete_expired' then 'trialing'
            else source_status
        end as status,
        currency,
        {{ stripe_amount('monthly_minor_units', 'currency') }} as mrr_amount,
        started_at,
        case
            when source_status in ('canceled', 'incomplete_expired') then coalesce(ended_at, source_canceled_at)
            else cancel_at
        end as canceled_at,
        updated_at
    from renamed

)

select * from final
