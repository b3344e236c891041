-- Win rate by sales rep: one row per month of closing and sales rep with at least one deal closed
-- (won or lost) in the month. Deals without a known owner are grouped under a NULL sales_rep_key.
-- Only the deals of the pipelines that count (fct_deals.is_sales_pipeline) are counted.

with

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

sales_reps as (

    select * from {{ ref('dim_sales_reps') }}

),

monthly as (

    select
        close_month as month,
        sales_rep_key,
        count(*) filter (where is_won) as deals_won,
        count(*) filter (where is_lost) as deals_lost,
        coalesce(sum(amount_reporting) filter (where is_won), 0) as won_amount,
        avg(cycle_days) filter (where is_won) as avg_cycle_days
    from deals
    where status in ('won', 'lost')
    group by close_month, sales_rep_key

),

final as (

    select
        monthly.month,
        monthly.sales_rep_key,
        sales_reps.full_name as sales_rep_name,
        sales_reps.team,
        monthly.deals_won,
        monthly.deals_lost,
        monthly.deals_won::numeric / nullif(monthly.deals_won + monthly.deals_lost, 0) as win_rate,
        monthly.won_amount,
        monthly.avg_cycle_days
    from monthly
    left join sales_reps
        on monthly.sales_rep_key = sales_reps.sales_rep_key

)

select * from final
