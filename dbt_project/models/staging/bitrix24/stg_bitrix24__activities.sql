{{
    config(
        indexes=[{'columns': ['activity_id']}]
    )
}}

{%- set originator = var('bitrix24_originator', 'b2b-file-drop') | replace("'", "''") %}

-- The activities of the Bitrix24 portal as of the cutoff, one row per activity (MAPPING.md,
-- "activities"): the latest version of each activity changed before the cutoff (LAST_UPDATED),
-- none whose latest such version is a deletion. The deal is the owner when OWNER_TYPE_ID is 2; the
-- account and the contact are the COMMUNICATIONS entries of ENTITY_TYPE_ID 4 and 3, else the owner
-- of that type. channel from TYPE_ID (1 meeting, 2 call, 4 email) and, for the others, the
-- provider (IMOPENLINES_SESSION social, REST_APP webinar/event/other by PROVIDER_TYPE_ID...).
-- activity_id: the id rule of base_bitrix24__ids (activities are referred to by no other stream).

with

source as (

    select * from {{ landed('bitrix24', 'activities') }} as activities

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

live_versions as (

    select * from latest_versions
    where not is_deleted

),

ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity in ('deals', 'companies', 'contacts', 'users')

),

references_of as (

    select
        live_versions.*,
        case when doc ->> 'OWNER_TYPE_ID' = '2' then nullif(doc ->> 'OWNER_ID', '') end as deal_record_id,
        coalesce(
            jsonb_path_query_first(
                doc, '$.COMMUNICATIONS[*] ? (@.ENTITY_TYPE_ID == "4" || @.ENTITY_TYPE_ID == 4).ENTITY_ID'
            ) #>> '{}',
            case when doc ->> 'OWNER_TYPE_ID' = '4' then doc ->> 'OWNER_ID' end
        ) as company_record_id,
        coalesce(
            jsonb_path_query_first(
                doc, '$.COMMUNICATIONS[*] ? (@.ENTITY_TYPE_ID == "3" || @.ENTITY_TYPE_ID == 3).ENTITY_ID'
            ) #>> '{}',
            case when doc ->> 'OWNER_TYPE_ID' = '3' then doc ->> 'OWNER_ID' end
        ) as contact_record_id
    from live_versions

),

renamed as (

    select
        -- ids
        case
            when
                references_of.doc ->> 'ORIGINATOR_ID' = '{{ originator }}'
                and nullif(references_of.doc ->> 'ORIGIN_ID', '') is not null
                then references_of.doc ->> 'ORIGIN_ID'
            else coalesce(references_of.doc ->> 'ID', references_of.record_id)
        end as activity_id,
        coalesce(deal_ids.canonical_id, nullif(references_of.deal_record_id, '0')) as deal_id,
        coalesce(account_ids.canonical_id, nullif(nullif(references_of.company_record_id, ''), '0')) as account_id,
        coalesce(contact_ids.canonical_id, nullif(nullif(references_of.contact_record_id, ''), '0')) as contact_id,
        coalesce(owner_ids.canonical_id, nullif(nullif(references_of.doc ->> 'RESPONSIBLE_ID', ''), '0'))
            as owner_user_id,

        -- text
        case
            when references_of.doc ->> 'TYPE_ID' = '1' then 'meeting'
            when references_of.doc ->> 'TYPE_ID' = '2' then 'call'
            when references_of.doc ->> 'TYPE_ID' = '4' then 'email'
            when references_of.doc ->> 'PROVIDER_ID' = 'IMOPENLINES_SESSION' then 'social'
            when references_of.doc ->> 'PROVIDER_ID' = 'REST_APP'
                then
                    case references_of.doc ->> 'PROVIDER_TYPE_ID'
                        when 'WEBINAR' then 'webinar'
                        when 'EVENT' then 'event'
                        else 'other'
                    end
            when references_of.doc ->> 'PROVIDER_ID' = 'CRM_MEETING' then 'meeting'
            when references_of.doc ->> 'PROVIDER_ID' = 'VOXIMPLANT_CALL' then 'call'
            when references_of.doc ->> 'PROVIDER_ID' = 'CRM_EMAIL' then 'email'
            else 'other'
        end as channel,

        -- timestamps (UTC; the API answers ISO 8601 with the portal's offset)
        nullif(references_of.doc ->> 'START_TIME', '')::timestamptz as occurred_at,
        references_of.updated_at,

        -- lineage: the raw row
        references_of.record_id as _record_id,
        references_of._extracted_at,
        references_of._dlt_load_id

    from references_of
    left join ids as deal_ids
        on deal_ids.entity = 'deals' and references_of.deal_record_id = deal_ids.bitrix_id
    left join ids as account_ids
        on account_ids.entity = 'companies' and references_of.company_record_id = account_ids.bitrix_id
    left join ids as contact_ids
        on contact_ids.entity = 'contacts' and references_of.contact_record_id = contact_ids.bitrix_id
    left join ids as owner_ids
        on owner_ids.entity = 'users' and references_of.doc ->> 'RESPONSIBLE_ID' = owner_ids.bitrix_id

),

final as (

    select
        activity_id,
        deal_id,
        account_id,
        contact_id,
        owner_user_id,
        channel,
        occurred_at,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from renamed

)

select * from final
