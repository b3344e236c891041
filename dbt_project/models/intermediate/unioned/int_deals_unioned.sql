-- CRM deals of every CRM source system as of the cutoff, one row per deal. A deal created at or
-- after the cutoff does not exist yet; a close at or after the cutoff has not happened yet, so such
-- a deal is open and has no closed_at.

with

unioned as (

    {{ union_staging(
        'deals',
        [ref('stg_files__deals'), ref('stg_amocrm__deals'), ref('stg_bitrix24__deals'), ref('stg_hubspot__deals')],
        rename={'status': 'source_status', 'closed_at': 'source_closed_at'}
    ) }}

),

as_of_cutoff as (

    select
        *,
        (
            source_status in ('won', 'lost')
            and source_closed_at < {{ cutoff() }}
        ) as is_closed
    from unioned
    where created_at < {{ cutoff() }}

),

final as (

    select
        {{ b2b_key('source_system', 'deal_id') }} as deal_key,
        {{ b2b_key('source_system', 'account_id', kind='crm') }} as crm_account_key,
        {{ b2b_key('source_system', 'owner_user_id') }} as owner_sales_rep_key,
        {{ b2b_key('source_system', 'stage_id') }} as stage_key,
        source_system,
        deal_id,
        account_id,
        owner_user_id,
        pipeline_id,
        stage_id,
        deal_name,
        case when is_closed then source_status else 'open' end as status,
        currency,
        amount,
        lost_reason,
        lead_source,
        expected_close_date,
        created_at,
        case when is_closed then source_closed_at end as closed_at,
        updated_at
    from as_of_cutoff

)

select * from final
