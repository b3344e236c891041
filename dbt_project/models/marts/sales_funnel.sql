-- Lead conversion: one row per cohort month (month of deal creation) and canonical stage, from the
-- month of the earliest deal's creation through the as-of month (docs/metrics.md, marts.sales_funnel).
-- Deleted deals do not exist downstream of staging, so they are excluded. Only the deals of the
-- pipelines that count (fct_deals.is_sales_pipeline, var sales_pipelines) are counted.

with

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

canonical_stages as (

    select * from {{ ref('canonical_stages') }}
    where stage_order is not null

),

bounds as (

    select min(cohort_month) as first_month
    from deals

),

months as (

    select {{ month_series('bounds.first_month', as_of_month()) }} as cohort_month
    from bounds
    where bounds.first_month is not null

),

cohort_highest_stages as (

    select
        cohort_month,
        highest_stage_order_reached,
        count(*) as deal_count
    from deals
    group by cohort_month, highest_stage_order_reached

),

month_stages as (

    select
        months.cohort_month,
        canonical_stages.stage_key,
        canonical_stages.stage_order
    from months
    cross join canonical_stages

),

reached as (

    select
        month_stages.cohort_month,
        month_stages.stage_key,
        month_stages.stage_order,
        coalesce(sum(cohort_highest_stages.deal_count), 0)::bigint as deals_reached
    from month_stages
    left join cohort_highest_stages
        on
            month_stages.cohort_month = cohort_highest_stages.cohort_month
            and month_stages.stage_order <= cohort_highest_stages.highest_stage_order_reached
    group by month_stages.cohort_month, month_stages.stage_key, month_stages.stage_order

),

with_next as (

    select
        *,
        lead(deals_reached) over (partition by cohort_month order by stage_order) as deals_reached_next
    from reached

),

final as (

    select
        cohort_month,
        stage_key,
        stage_order,
        deals_reached,
        deals_reached_next,
        deals_reached_next::numeric / nullif(deals_reached, 0) as conversion_to_next
    from with_next

)

select * from final
