-- Activities (touches) before the cutoff: one row per activity. Each *_key is set only when the record
-- it names exists as of the cutoff; the source ids stay for tracing orphans.

with

activities as (

    select * from {{ ref('int_activities_unioned') }}

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
        {{ utc_date('activities.occurred_at') }} as occurred_date,
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
