-- Repeat purchases: one row per month, counts as of the month's last day, from the month of the
-- earliest won deal's close through the as-of month (docs/metrics.md, marts.repeat_purchase_monthly).
-- A purchase is a won deal of a pipeline that counts (fct_deals.is_sales_pipeline), counted at its close
-- date; a customer is a unified account.

with

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

won_deals as (

    select
        account_key,
        close_date
    from deals
    where is_won

),

bounds as (

    select {{ month_of('min(close_date)') }} as first_month
    from won_deals

),

months as (

    select {{ month_series('bounds.first_month', as_of_month()) }} as month
    from bounds
    where bounds.first_month is not null

),

ranked_purchases as (

    select
        account_key,
        close_date,
        row_number() over (partition by account_key order by close_date) as purchase_number
    from won_deals
    where account_key is not null

),

customer_purchase_months as (

    select
        account_key,
        {{ month_of('min(close_date) filter (where purchase_number = 1)') }} as first_purchase_month,
        {{ month_of('min(close_date) filter (where purchase_number = 2)') }} as second_purchase_month
    from ranked_purchases
    where purchase_number <= 2
    group by account_key

),

first_purchases_by_month as (

    select
        first_purchase_month as month,
        count(*) as customers
    from customer_purchase_months
    group by first_purchase_month

),

second_purchases_by_month as (

    select
        second_purchase_month as month,
        count(*) as customers
    from customer_purchase_months
    where second_purchase_month is not null
    group by second_purchase_month

),

cumulative as (

    select
        months.month,
        sum(coalesce(first_purchases_by_month.customers, 0)) over (order by months.month)::bigint
            as customers_with_purchase,
        sum(coalesce(second_purchases_by_month.customers, 0)) over (order by months.month)::bigint
            as customers_with_repeat_purchase
    from months
    left join first_purchases_by_month
        on months.month = first_purchases_by_month.month
    left join second_purchases_by_month
        on months.month = second_purchases_by_month.month

),

final as (

    select
        month,
        customers_with_purchase,
        customers_with_repeat_purchase,
        customers_with_repeat_purchase::numeric / nullif(customers_with_purchase, 0) as repeat_purchase_rate
    from cumulative

)

select * from final
