-- Revenue: one row per month of payment, from the month of the earliest payment through the as-of
-- month (METRICS.md, marts.revenue_monthly). Revenue is amount_paid of paid invoices, converted at the
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

bounds as (

    select min(paid_month) as first_month
    from paid_invoices

),

months as (

    select {{ month_series('bounds.first_month', as_of_month()) }} as month
    from bounds
    where bounds.first_month is not null

),

monthly as (

    select
        paid_invoices.paid_month as month,
        sum(paid_invoices.amount_paid_reporting) as revenue,
        sum(paid_invoices.amount_paid_reporting) filter (
            where customer_first_paid_months.first_paid_month = paid_invoices.paid_month
        ) as revenue_new_customers,
        count(distinct paid_invoices.account_key) as paying_customers
    from paid_invoices
    left join customer_first_paid_months
        on paid_invoices.account_key = customer_first_paid_months.account_key
    group by paid_invoices.paid_month

),

final as (

    select
        months.month,
        coalesce(monthly.revenue, 0) as revenue,
        coalesce(monthly.revenue_new_customers, 0) as revenue_new_customers,
        coalesce(monthly.revenue_new_customers, 0) / nullif(monthly.revenue, 0) as new_customer_revenue_share,
        coalesce(monthly.paying_customers, 0) as paying_customers
    from months
    left join monthly
        on months.month = monthly.month

)

select * from final
