{{
    config(
        indexes=[
            {'columns': ['deal_key'], 'unique': True},
            {'columns': ['account_key']}
        ]
    )
}}

-- Deals as of the cutoff: one row per deal that exists (created before the cutoff, not deleted).
-- Amounts are in the deal's currency and in the reporting currency: converted at the close date for
-- a closed deal, at the as-of date for an open one. The deal's pipeline is its own pipeline_id, else
-- (the file drop's is optional) its current stage's; is_sales_pipeline says whether it counts in the
-- sales marts (docs/metrics.md, "Pipelines that count"): the marts filter on it, core keeps every deal.

with

deals as (

    select * from {{ ref('int_deals_unioned') }}

),

accounts as (

    select * from {{ ref('int_accounts_unified') }}

),

sales_reps as (

    select * from {{ ref('int_sales_reps_unioned') }}

),

stages as (

    select * from {{ ref('dim_stages') }}

),

canonical_stages as (

    select * from {{ ref('canonical_stages') }}

),

stages_reached as (

    select * from {{ ref('int_deals_stages_reached') }}

),

activities_by_deal as (

    select * from {{ ref('int_activities_aggregated_to_deals') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}

),

deals_dated as (

    select
        *,
        {{ reporting_date('created_at') }} as created_date,
        {{ reporting_date('closed_at') }} as close_date,
        coalesce({{ reporting_date('closed_at') }}, {{ as_of_date() }}) as conversion_date
    from deals

),

deals_joined as (

    select
        deals_dated.deal_key,
        deals_dated.source_system,
        deals_dated.deal_id,
        deals_dated.deal_name,
        accounts.account_key,
        deals_dated.account_id as crm_account_id,
        sales_reps.sales_rep_key,
        coalesce(deals_dated.pipeline_id, stages.pipeline_id) as pipeline_id,
        stages.stage_key as current_stage_key,
        deals_dated.stage_id as current_stage_id,
        stages.canonical_stage_key as current_canonical_stage_key,
        stages.canonical_stage_order as current_canonical_stage_order,
        stages.probability as current_stage_probability,
        stages_reached.highest_stage_order_reached,
        reached_stages.stage_key as highest_stage_key_reached,
        deals_dated.status,
        deals_dated.currency,
        deals_dated.amount,
        deals_dated.conversion_date,
        {{ to_reporting('deals_dated.amount', 'deals_dated.currency', 'fx_rates') }} as amount_reporting,
        deals_dated.created_at,
        deals_dated.created_date,
        deals_dated.closed_at,
        deals_dated.close_date,
        activities_by_deal.first_activity_at,
        coalesce(activities_by_deal.activity_count, 0) as activity_count,
        deals_dated.expected_close_date,
        deals_dated.lead_source,
        deals_dated.lost_reason,
        deals_dated.updated_at
    from deals_dated
    left join accounts
        on deals_dated.crm_account_key = accounts.account_key
    left join sales_reps
        on deals_dated.owner_sales_rep_key = sales_reps.sales_rep_key
    left join stages
        on deals_dated.stage_key = stages.stage_key
    inner join stages_reached
        on deals_dated.deal_key = stages_reached.deal_key
    left join canonical_stages as reached_stages
        on stages_reached.highest_stage_order_reached = reached_stages.stage_order
    left join activities_by_deal
        on deals_dated.deal_key = activities_by_deal.deal_key
    left join fx_rates
        on
            deals_dated.currency = fx_rates.currency
            and deals_dated.conversion_date = fx_rates.rate_date

),

deals_measured as (

    select
        *,
        least(created_at, first_activity_at) as first_touch_at,
        {{ reporting_date('least(created_at, first_activity_at)') }} as first_touch_date
    from deals_joined

),

final as (

    select
        deal_key,
        source_system,
        deal_id,
        deal_name,
        account_key,
        crm_account_id,
        sales_rep_key,

        -- pipeline: whether the deal counts in the sales marts (var sales_pipelines)
        pipeline_id,
        {{ is_sales_pipeline('pipeline_id') }} as is_sales_pipeline,

        -- status as of the cutoff
        status,
        status = 'open' as is_open,
        status = 'won' as is_won,
        status = 'lost' as is_lost,

        -- stages
        current_stage_key,
        current_stage_id,
        current_canonical_stage_key,
        current_canonical_stage_order,
        current_stage_probability,
        highest_stage_order_reached,
        highest_stage_key_reached,

        -- money
        currency,
        amount,
        conversion_date,
        amount_reporting,
        case
            when status = 'open' then amount_reporting * coalesce(current_stage_probability, 0)
        end as weighted_amount_reporting,

        -- dates
        created_at,
        created_date,
        {{ month_of('created_date') }} as cohort_month,
        closed_at,
        close_date,
        {{ month_of('close_date') }} as close_month,
        expected_close_date,
        first_activity_at,
        first_touch_at,
        first_touch_date,
        close_date - first_touch_date as cycle_days,
        activity_count,

        lead_source,
        lost_reason,
        updated_at
    from deals_measured

)

select * from final
