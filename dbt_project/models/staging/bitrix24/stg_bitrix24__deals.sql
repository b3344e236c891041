{{
    config(
        indexes=[{'columns': ['deal_id']}, {'columns': ['_record_id']}]
    )
}}

-- The deals of the Bitrix24 portal as of the cutoff, one row per deal (MAPPING.md, "deals"): the
-- latest version of each deal changed before the cutoff, none whose latest such version is a
-- deletion. status from STAGE_SEMANTIC_ID (P open, S won, F lost); closed_at from the portal field
-- UF_CRM_CLOSED_AT, or, on a portal without it, when the deal last moved to a final stage (stage
-- history TYPE_ID 3), else CLOSEDATE, for a closed deal. expected_close_date: the date CLOSEDATE
-- names in the portal's offset.

with

source as (

    select * from {{ landed('bitrix24', 'deals') }} as deals

),

stage_history_source as (

    select * from {{ landed('bitrix24', 'stage_history') }} as stage_history

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

live_versions as (

    select * from latest_versions
    where not is_deleted

),

final_moves as (

    select
        doc ->> 'OWNER_ID' as deal_record_id,
        max((doc ->> 'CREATED_TIME')::timestamptz) as moved_at
    from stage_history_source
    where
        updated_at < {{ cutoff() }}
        and not is_deleted
        and doc ->> 'TYPE_ID' = '3'
    group by doc ->> 'OWNER_ID'

),

ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity in ('deals', 'companies', 'users', 'deal_categories', 'deal_stages')

),

renamed as (

    select
        -- ids
        coalesce(deal_ids.canonical_id, live_versions.record_id) as deal_id,
        coalesce(account_ids.canonical_id, nullif(nullif(live_versions.doc ->> 'COMPANY_ID', ''), '0'))
            as account_id,
        coalesce(owner_ids.canonical_id, nullif(nullif(live_versions.doc ->> 'ASSIGNED_BY_ID', ''), '0'))
            as owner_user_id,
        coalesce(category_ids.canonical_id, coalesce(nullif(live_versions.doc ->> 'CATEGORY_ID', ''), '0'))
            as pipeline_id,
        coalesce(stage_ids.canonical_id, regexp_replace(live_versions.doc ->> 'STAGE_ID', '^C[0-9]+:', ''))
            as stage_id,

        -- text
        nullif(live_versions.doc ->> 'TITLE', '') as deal_name,
        case live_versions.doc ->> 'STAGE_SEMANTIC_ID'
            when 'S' then 'won'
            when 'F' then 'lost'
            else 'open'
        end as status,
        nullif(upper(trim(live_versions.doc ->> 'CURRENCY_ID')), '') as currency,
        nullif(live_versions.doc ->> 'UF_CRM_LOST_REASON', '') as lost_reason,
        nullif(live_versions.doc ->> 'SOURCE_ID', '') as lead_source,

        -- numbers
        (replace(nullif(trim(live_versions.doc ->> 'OPPORTUNITY'), ''), ',', '.')::numeric) as amount,

        -- dates and timestamps (UTC; the API answers ISO 8601 with the portal's offset)
        left(nullif(live_versions.doc ->> 'CLOSEDATE', ''), 10)::date as expected_close_date,
        nullif(live_versions.doc ->> 'DATE_CREATE', '')::timestamptz as created_at,
        case
            when live_versions.doc -> 'UF_CRM_CLOSED_AT' is not null
                then nullif(live_versions.doc ->> 'UF_CRM_CLOSED_AT', '')::timestamptz
            when live_versions.doc ->> 'CLOSED' = 'Y'
                then coalesce(final_moves.moved_at, nullif(live_versions.doc ->> 'CLOSEDATE', '')::timestamptz)
        end as closed_at,
        live_versions.updated_at,

        -- lineage: the raw row
        live_versions.record_id as _record_id,
        live_versions._extracted_at,
        live_versions._dlt_load_id

    from live_versions
    left join ids as deal_ids
        on deal_ids.entity = 'deals' and live_versions.record_id = deal_ids.bitrix_id
    left join ids as account_ids
        on account_ids.entity = 'companies' and live_versions.doc ->> 'COMPANY_ID' = account_ids.bitrix_id
    left join ids as owner_ids
        on owner_ids.entity = 'users' and live_versions.doc ->> 'ASSIGNED_BY_ID' = owner_ids.bitrix_id
    left join ids as category_ids
        on
            category_ids.entity = 'deal_categories'
            and coalesce(nullif(live_versions.doc ->> 'CATEGORY_ID', ''), '0') = category_ids.bitrix_id
    left join ids as stage_ids
        on stage_ids.entity = 'deal_stages' and live_versions.doc ->> 'STAGE_ID' = stage_ids.bitrix_id
    left join final_moves
        on live_versions.record_id = final_moves.deal_record_id

),

final as (

    select
        deal_id,
        account_id,
        owner_user_id,
        pipeline_id,
        stage_id,
        deal_name,
        status,
        currency,
        lost_reason,
        lead_source,
        amount,
        expected_close_date,
        created_at,
        closed_at,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from renamed

)

select * from final
