-- Customer retention and churn: one row per month, from the month of the earliest start of a counted
-- (non-trialing) subscription through the as-of month (docs/metrics.md, marts.retention_monthly).
-- A customer is active on day x when one of its counted subscriptions started on or before x and is
-- not canceled on or before x. E = customers active on the month's last day, S = those active on the
-- previous month's last day (= E of the previous month; empty before the first month).
-- Rather than listing every customer's every active month, each customer's active months are merged
-- into maximal runs of consecutive months: a run starting in month a and ending in month b puts the
-- customer in E for a .. b, makes it new in a and churned in b + 1 month (when that is not after the
-- as-of month). Then |E \ S| = runs starting in the month, |S \ E| = runs ending in the month before,
-- E = the running total of new minus churned, S = E - new + churned and |S ∩ E| = S - churned.

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

-- Each non-empty range with the latest last active month of the customer's earlier ranges (in order
-- of first, then last active month).
ranges_with_previous_end as (

    select
        account_key,
        first_active_month,
        last_active_month,
        max(last_active_month) over (
            partition by account_key
            order by first_active_month, last_active_month
            rows between unbounded preceding and 1 preceding
        ) as previous_last_active_month
    from subscription_active_ranges
    where first_active_month <= last_active_month

),

-- A range starts a new run unless it begins by the month after the customer's earlier ranges end;
-- the running count of run starts numbers the runs.
ranges_with_run_number as (

    select
        account_key,
        first_active_month,
        last_active_month,
        sum(
            case
                when
                    previous_last_active_month is null
                    or first_active_month > (previous_last_active_month + interval '1 month')::date
                    then 1
                else 0
            end
        ) over (
            partition by account_key
            order by first_active_month, last_active_month
            rows between unbounded preceding and current row
        ) as run_number
    from ranges_with_previous_end

),

customer_active_runs as (

    select
        account_key,
        min(first_active_month) as first_month,
        max(last_active_month) as last_month
    from ranges_with_run_number
    group by account_key, run_number

),

membership_changes as (

    select
        first_month as month,
        true as is_new
    from customer_active_runs

    union all

    select
        (last_month + interval '1 month')::date as month,
        false as is_new
    from customer_active_runs
    where last_month < {{ as_of_month() }}

),

monthly_changes as (

    select
        month,
        count(*) filter (where is_new) as customers_new,
        count(*) filter (where not is_new) as customers_churned
    from membership_changes
    group by month

),

monthly as (

    select
        months.month,
        coalesce(monthly_changes.customers_new, 0) as customers_new,
        coalesce(monthly_changes.customers_churned, 0) as customers_churned,
        sum(coalesce(monthly_changes.customers_new, 0) - coalesce(monthly_changes.customers_churned, 0)) over (
            order by months.month
        )::bigint as customers_end
    from months
    left join monthly_changes
        on months.month = monthly_changes.month

),

monthly_with_start as (

    select
        month,
        customers_end - customers_new + customers_churned as customers_start,
        customers_end,
        customers_new,
        customers_churned
    from monthly

),

final as (

    select
        month,
        customers_start,
        customers_end,
        customers_new,
        customers_churned,
        (customers_start - customers_churned)::numeric / nullif(customers_start, 0) as retention_rate,
        customers_churned::numeric / nullif(customers_start, 0) as churn_rate
    from monthly_with_start

)

select * from final
