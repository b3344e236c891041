-- Sales performance: one row per month of closing, from the month of the earliest close (won or
-- lost) through the as-of month (docs/metrics.md, marts.sales_performance_monthly). Only the deals of
-- the pipelines that count (fct_deals.is_sales_pipeline, var sales_pipelines) are counted.

with

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

closed_deals as (

    select * from deals
    where status in ('won', 'lost')

),

bounds as (

    select min(close_month) as first_month
    from closed_deals

),

months as (

    select {{ month_series('bounds.first_month', as_of_month()) }} as month
    from bounds
    where bounds.first_month is not null

),

monthly as (

    select
        close_month as month,
        count(*) filter (where is_won) as deals_won,
        count(*) filter (where is_lost) as deals_lost,
        sum(amount_reporting) filter (where is_won) as won_amount,
        avg(cycle_days) filter (where is_won) as avg_cycle_days,
        (percentile_cont(0.5) within group (order by cycle_days) filter (where is_won))::numeric
            as median_cycle_days
    from closed_deals
    group by close_month

),

final as (

    select
        months.month,
        coalesce(monthly.deals_won, 0) as deals_won,
        coalesce(monthly.deals_lost, 0) as deals_lost,
        coalesce(monthly.deals_won, 0)::numeric
        / nullif(coalesce(monthly.deals_won, 0) + coalesce(monthly.deals_lost, 0), 0) as win_rate,
        coalesce(monthly.won_amount, 0) as won_amount,
        monthly.won_amount / nullif(monthly.deals_won, 0) as avg_deal_size,
        monthly.avg_cycle_days,
        monthly.median_cycle_days
    from months
    left join monthly
        on months.month = monthly.month

)

select * from final
