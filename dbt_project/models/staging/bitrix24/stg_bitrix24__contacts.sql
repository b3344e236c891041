{{
    config(
        indexes=[{'columns': ['contact_id']}]
    )
}}

-- The contacts of the Bitrix24 portal as of the cutoff, one row per contact (MAPPING.md,
-- "contacts"): the latest version of each contact changed before the cutoff, none whose latest
-- such version is a deletion. EMAIL and PHONE are multi-fields: the first non-empty value.

with

source as (

    select * from {{ landed('bitrix24', 'contacts') }} as contacts

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
    where entity in ('contacts', 'companies')

),

renamed as (

    select
        -- ids
        coalesce(contact_ids.canonical_id, live_versions.record_id) as contact_id,
        coalesce(account_ids.canonical_id, nullif(nullif(live_versions.doc ->> 'COMPANY_ID', ''), '0'))
            as account_id,

        -- text: Bitrix24 splits the name, the canonical model keeps it whole
        nullif(
            concat_ws(
                ' ',
                nullif(trim(live_versions.doc ->> 'NAME'), ''),
                nullif(trim(live_versions.doc ->> 'SECOND_NAME'), ''),
                nullif(trim(live_versions.doc ->> 'LAST_NAME'), '')
            ),
            ''
        ) as full_name,
        jsonb_path_query_first(live_versions.doc, '$.EMAIL[*] ? (@.VALUE != "").VALUE') #>> '{}' as email,
        jsonb_path_query_first(live_versions.doc, '$.PHONE[*] ? (@.VALUE != "").VALUE') #>> '{}' as phone,
        nullif(live_versions.doc ->> 'POST', '') as job_title,

        -- timestamps (UTC; the API answers ISO 8601 with the portal's offset)
        nullif(live_versions.doc ->> 'DATE_CREATE', '')::timestamptz as created_at,
        live_versions.updated_at,

        -- lineage: the raw row
        live_versions.record_id as _record_id,
        live_versions._extracted_at,
        live_versions._dlt_load_id

    from live_versions
    left join ids as contact_ids
        on contact_ids.entity = 'contacts' and live_versions.record_id = contact_ids.bitrix_id
    left join ids as account_ids
        on account_ids.entity = 'companies' and live_versions.doc ->> 'COMPANY_ID' = account_ids.bitrix_id

),

final as (

    select
        contact_id,
        account_id,
        full_name,
        email,
        phone,
        job_title,
        created_at,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from renamed

)

select * from final
