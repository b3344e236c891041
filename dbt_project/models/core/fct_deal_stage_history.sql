{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['deal_key']}],
        pre_hook="{{ core_patch_forget('deal_key', fct_deal_stage_history_to_recompute, fct_deal_stage_history_upstreams()) }}",
        post_hook=[
            "{{ fct_deal_stage_history_rerun_to_cutoff() }}",
            "{{ core_patch_remember(fct_deal_stage_history_upstreams()) }}"
        ]
    )
}}

-- Stage entries of existing deals before the cutoff: one row per entry of a deal into a stage.
-- exited_at is the deal's next entry (ties broken by canonical order, then stage id) or, for its last
-- entry, its close if closed; days_in_stage runs to exited_at, or to the cutoff while the deal is still
-- in the stage.
-- Incremental: a night recomputes only the deals whose entries, deal record or stages can have
-- changed since the fact's last run and, when the as-of date moved, runs the entries without an exit
-- to the new cutoff (macros/core_patch.sql); the candidate schema carries the fact over.
-- depends_on: {{ ref('base_files__deal_stage_history') }}, {{ ref('base_files__deals') }}
-- depends_on: {{ ref('base_files__stages') }}, {{ ref('stg_files__deal_stage_history') }}
-- depends_on: {{ ref('stg_files__deals') }}, {{ ref('stg_files__stages') }}

with

deal_stage_history as (

    select * from {{ ref('int_deal_stage_history_unioned') }}
    where {{ core_patch_only_changed('deal_key', fct_deal_stage_history_upstreams()) }}

),

deals as (

    select * from {{ ref('int_deals_unioned') }}
    where {{ core_patch_only_changed('deal_key', fct_deal_stage_history_upstreams()) }}

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
        {{ days_between(
            'entered_at',
            "coalesce(next_entered_at, case when deal_closed_at >= entered_at then deal_closed_at end, "
            ~ cutoff() ~ ")"
        ) }} as days_in_stage
    from sequenced

)

select * from final
