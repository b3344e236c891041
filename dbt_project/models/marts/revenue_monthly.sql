-- Revenue: one row per month of payment, from the month of the earliest payment through the as-of
-- month (docs/metrics.md, marts.revenue_monthly). Revenue is amount_paid of paid invoices, converted at the
-- paid date; a customer (unified account) is new in the month of its earliest paid invoice.

with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

paid_invoices as (

    select
        account_key,
        paid_month,
        amount_paid_reporting
    from invoices
    where is_paid

),

customer_first_paid_months as (

    select
        account_key,
        min(paid_month) as first_paid_month
    from paid_invoices
    where account_key is not null
    group by account_key

),

monthly_revenue as (

    select
        paid_invoices.paid_month as month,
        sum(paid_invoices.amount_paid_reporting) as revenue,
        sum(paid_invoices.amount_paid_reporting) filter (
            where customer_first_paid_months.first_paid_month = paid_invoices.paid_month
        ) as revenue_new_customers
    from paid_invoices
    left join customer_first_paid_months
        on paid_invoices.account_key = customer_first_paid_months.account_key
    group by paid_invoices.paid_month

),

-- One row per customer and month it paid in, so the month's paying customers are counted by hashing
-- instead of sorting every paid invoice for a count(distinct).
customer_paid_months as (

    select
        account_key,
        paid_month
    from paid_invoices
    where account_key is not null
    group by account_key, paid_month

),

monthly_paying_customers as (

    select
        paid_month as month,
        count(*) as paying_customers
    from customer_paid_months
    group by paid_month

),

bounds as (

    select min(month) as first_month
    from monthly_revenue

),

months as (

    select {{ month_series('bounds.first_month', as_of_month()) }} as month
    from bounds
    where bounds.first_month is not null

),

final as (

    select
        months.month,
        coalesce(monthly_revenue.revenue, 0) as revenue,
        coalesce(monthly_revenue.revenue_new_customers, 0) as revenue_new_customers,
        coalesce(monthly_revenue.revenue_new_customers, 0) / nullif(monthly_revenue.revenue, 0)
            as new_customer_revenue_share,
        coalesce(monthly_paying_customers.paying_customers, 0) as paying_customers
    from months
    left join monthly_revenue
        on months.month = monthly_revenue.month
    left join monthly_paying_customers
        on months.month = monthly_paying_customers.month

)

select * from final
