-- Customer retention and churn: one row per month, from the month of the earliest start of a counted
-- (non-trialing) subscription through the as-of month (METRICS.md, marts.retention_monthly).
-- A customer is active on day x when one of its counted subscriptions started on or before x and is
-- not canceled on or before x. E = customers active on the month's last day, S = those active on the
-- previous month's last day (= E of the previous month; empty before the first month).

with

subscriptions as (

    select * from {{ ref('fct_subscriptions') }}

),

counted_subscriptions as (

    select
        account_key,
        start_date,
        cancel_date
    from subscriptions
    where is_counted

),

bounds as (

    select {{ month_of('min(start_date)') }} as first_month
    from counted_subscriptions

),

months as (

    select {{ month_series('bounds.first_month', as_of_month()) }} as month
    from bounds
    where bounds.first_month is not null

),

-- A subscription is active on the last day of month m from the month of its start through the month
-- before the month of its cancellation (the last month whose last day precedes the cancel date).
subscription_active_ranges as (

    select
        account_key,
        {{ month_of('start_date') }} as first_active_month,
        least(
            {{ as_of_month() }},
            coalesce(({{ month_of('cancel_date') }} - interval '1 month')::date, {{ as_of_month() }})
        ) as last_active_month
    from counted_subscriptions
    where account_key is not null

),

customers_active_at_month_end as (

    select distinct
        account_key,
        {{ month_series('first_active_month', 'last_active_month') }} as month
    from subscription_active_ranges
    where first_active_month <= last_active_month

),

end_sets as (

    select
        month,
        account_key
    from customers_active_at_month_end

),

start_sets as (

    select
        (month + interval '1 month')::date as month,
        account_key
    from customers_active_at_month_end
    where month < {{ as_of_month() }}

),

membership as (

    select
        coalesce(end_sets.month, start_sets.month) as month,
        start_sets.account_key is not null as is_in_start,
        end_sets.account_key is not null as is_in_end
    from end_sets
    full outer join start_sets
        on
            end_sets.month = start_sets.month
            and end_sets.account_key = start_sets.account_key

),

monthly as (

    select
        month,
        count(*) filter (where is_in_start) as customers_start,
        count(*) filter (where is_in_end) as customers_end,
        count(*) filter (where is_in_end and not is_in_start) as customers_new,
        count(*) filter (where is_in_start and not is_in_end) as customers_churned,
        count(*) filter (where is_in_start and is_in_end) as customers_retained
    from membership
    group by month

),

final as (

    select
        months.month,
        coalesce(monthly.customers_start, 0) as customers_start,
        coalesce(monthly.customers_end, 0) as customers_end,
        coalesce(monthly.customers_new, 0) as customers_new,
        coalesce(monthly.customers_churned, 0) as customers_churned,
        monthly.customers_retained::numeric / nullif(monthly.customers_start, 0) as retention_rate,
        monthly.customers_churned::numeric / nullif(monthly.customers_start, 0) as churn_rate
    from months
    left join monthly
        on months.month = monthly.month

)

select * from final
