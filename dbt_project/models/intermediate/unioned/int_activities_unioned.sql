-- CRM activities of every CRM source system that occurred before the cutoff, one row per activity.

with

files_activities as (

    select * from {{ ref('stg_files__activities') }}

),

unioned as (

    select
        'files' as source_system,
        activity_id,
        deal_id,
        account_id,
        contact_id,
        owner_user_id,
        channel,
        occurred_at,
        updated_at
    from files_activities

),

final as (

    select
        {{ b2b_key('source_system', 'activity_id') }} as activity_key,
        {{ b2b_key('source_system', 'deal_id') }} as deal_key,
        {{ b2b_key('source_system', 'account_id', kind='crm') }} as crm_account_key,
        {{ b2b_key('source_system', 'contact_id') }} as contact_key,
        {{ b2b_key('source_system', 'owner_user_id') }} as owner_sales_rep_key,
        unioned.*
    from unioned
    where occurred_at < {{ cutoff() }}

)

select * from final
