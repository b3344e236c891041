-- Time in stage: one row per month of stage entry and canonical stage (the seven ordered stages and
-- `lost`) with at least one entry. Durations are over completed stays (the deal left the stage before
-- the cutoff); open stays are counted separately. Only the entries of the deals of the pipelines that
-- count (fct_deals.is_sales_pipeline, var sales_pipelines).

with

stage_history as (

    select * from {{ ref('fct_deal_stage_history') }}

),

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

entries as (

    select
        {{ reporting_month('stage_history.entered_at') }} as month,
        stage_history.canonical_stage_key as stage_key,
        stage_history.canonical_stage_order as stage_order,
        stage_history.days_in_stage,
        stage_history.exited_at is not null as is_completed
    from stage_history
    inner join deals
        on stage_history.deal_key = deals.deal_key
    where stage_history.canonical_stage_key is not null

),

final as (

    select
        month,
        stage_key,
        stage_order,
        count(*) as stage_entries,
        count(*) filter (where is_completed) as completed_stays,
        count(*) filter (where not is_completed) as open_stays,
        avg(days_in_stage) filter (where is_completed) as avg_days_in_stage,
        (percentile_cont(0.5) within group (order by days_in_stage) filter (where is_completed))::numeric
            as median_days_in_stage
    from entries
    group by month, stage_key, stage_order

)

select * from final
