-- Stage entries of existing deals before the cutoff: one row per entry of a deal into a stage.
-- exited_at is the deal's next entry (ties broken by canonical order, then stage id) or, for its last
-- entry, its close if closed; days_in_stage runs to exited_at, or to the cutoff while the deal is still
-- in the stage.

with

deal_stage_history as (

    select * from {{ ref('int_deal_stage_history_unioned') }}

),

deals as (

    select * from {{ ref('int_deals_unioned') }}

),

stages as (

    select * from {{ ref('dim_stages') }}

),

entries as (

    select
        deal_stage_history.deal_key,
        deal_stage_history.stage_key,
        deal_stage_history.source_system,
        deal_stage_history.deal_id,
        deal_stage_history.stage_id,
        stages.canonical_stage_key,
        stages.canonical_stage_order,
        deal_stage_history.entered_at,
        deals.closed_at as deal_closed_at
    from deal_stage_history
    inner join deals
        on deal_stage_history.deal_key = deals.deal_key
    left join stages
        on deal_stage_history.stage_key = stages.stage_key

),

sequenced as (

    select
        *,
        row_number() over deal_entries as entry_number,
        lead(entered_at) over deal_entries as next_entered_at
    from entries
    window deal_entries as (
        partition by deal_key
        order by entered_at, canonical_stage_order nulls last, stage_id
    )

),

final as (

    select
        {{ dbt.hash(
            "deal_key || '|' || stage_key || '|' || to_char(entered_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
        ) }} as stage_entry_key,
        deal_key,
        stage_key,
        source_system,
        deal_id,
        stage_id,
        canonical_stage_key,
        canonical_stage_order,
        entry_number,
        entered_at,
        coalesce(
            next_entered_at,
            case when deal_closed_at >= entered_at then deal_closed_at end
        ) as exited_at,
        next_entered_at is null and deal_closed_at is null as is_current_stage,
        round(
            (
                extract(epoch from (
                    coalesce(
                        next_entered_at,
                        case when deal_closed_at >= entered_at then deal_closed_at end,
                        {{ cutoff() }}
                    )
                    - entered_at
                )) / 86400
            )::numeric,
            4
        ) as days_in_stage
    from sequenced

)

select * from final
