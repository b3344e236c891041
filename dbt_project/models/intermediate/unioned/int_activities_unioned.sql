{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['activity_id']}, {'columns': ['activity_key']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__activities'), ['activity_id'], crossing=['occurred_at'], upstream=ref('stg_files__activities')) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__activities'), upstream=ref('stg_files__activities')) }}"
    )
}}

-- CRM activities of every CRM source system that occurred before the cutoff, one row per activity.
-- Incremental: a run recomputes only the activities that can have changed since the last one, or
-- whose occurred_at lies between the last cutoff and tonight's (macros/latest_versions.sql).

with

unioned as (

    {{ union_staging(
        'activities',
        [ref('stg_files__activities'), ref('stg_amocrm__activities'), ref('stg_bitrix24__activities'), ref('stg_hubspot__activities')],
        where=latest_versions_only_changed(
            ref('base_files__activities'),
            ['activity_id'],
            crossing=['occurred_at'],
            upstream=ref('stg_files__activities')
        )
    ) }}

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
