{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['activity_key']}],
        pre_hook="{{ core_patch_forget('activity_key', fct_activities_to_recompute, fct_activities_upstreams()) }}",
        post_hook="{{ core_patch_remember(fct_activities_upstreams()) }}"
    )
}}

-- Activities (touches) before the cutoff: one row per activity. Each *_key is set only when the record
-- it names exists as of the cutoff; the source ids stay for tracing orphans.
-- Incremental: a night recomputes only the activities that changed or crossed the cutoff and those
-- naming a deal, account, contact or sales rep that can have appeared or disappeared since the
-- fact's last run (macros/core_patch.sql); the candidate schema carries the fact over.
-- depends_on: {{ ref('base_files__activities') }}, {{ ref('base_files__deals') }}
-- depends_on: {{ ref('base_files__accounts') }}, {{ ref('base_files__contacts') }}
-- depends_on: {{ ref('base_files__users') }}, {{ ref('stg_files__activities') }}
-- depends_on: {{ ref('stg_files__deals') }}, {{ ref('stg_files__accounts') }}
-- depends_on: {{ ref('stg_files__contacts') }}, {{ ref('stg_files__users') }}

with

activities as (

    select * from {{ ref('int_activities_unioned') }}
    where {{ core_patch_only_changed('activity_key', fct_activities_upstreams()) }}

),

deals as (

    select * from {{ ref('int_deals_unioned') }}

),

accounts as (

    select * from {{ ref('int_accounts_unified') }}

),

contacts as (

    select * from {{ ref('int_contacts_unioned') }}

),

sales_reps as (

    select * from {{ ref('int_sales_reps_unioned') }}

),

final as (

    select
        activities.activity_key,
        activities.source_system,
        activities.activity_id,
        deals.deal_key,
        accounts.account_key,
        contacts.contact_key,
        sales_reps.sales_rep_key,
        activities.deal_id,
        activities.account_id as crm_account_id,
        activities.contact_id,
        activities.channel,
        activities.occurred_at,
        {{ reporting_date('activities.occurred_at') }} as occurred_date,
        activities.updated_at
    from activities
    left join deals
        on activities.deal_key = deals.deal_key
    left join accounts
        on activities.crm_account_key = accounts.account_key
    left join contacts
        on activities.contact_key = contacts.contact_key
    left join sales_reps
        on activities.owner_sales_rep_key = sales_reps.sales_rep_key

)

select * from final
