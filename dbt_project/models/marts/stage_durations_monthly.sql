-- Time in stage: one row per month of stage entry and canonical stage (the seven ordered stages and
-- `lost`) with at least one entry. Durations are over completed stays (the deal left the stage before
-- the cutoff); open stays are counted separately.

with

stage_history as (

    select * from {{ ref('fct_deal_stage_history') }}

),

entries as (

    select
        {{ utc_month('entered_at') }} as month,
        canonical_stage_key as stage_key,
        canonical_stage_order as stage_order,
        days_in_stage,
        exited_at is not null as is_completed
    from stage_history
    where canonical_stage_key is not null

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
