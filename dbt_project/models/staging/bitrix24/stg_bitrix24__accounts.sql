{{
    config(
        indexes=[{'columns': ['account_id']}]
    )
}}

-- The companies of the Bitrix24 portal as of the cutoff, one row per account (MAPPING.md,
-- "accounts"): the latest version of each company changed before the cutoff, none whose latest
-- such version is a deletion. The tax id lives in the company's requisites (RQ_INN): the current
-- company requisite (ENTITY_TYPE_ID 4) of the lowest ID with a non-empty RQ_INN; updated_at is the
-- later of the company's and its requisites' changes.

with

source as (

    select * from {{ landed('bitrix24', 'companies') }} as companies

),

requisites_source as (

    select * from {{ landed('bitrix24', 'requisites') }} as requisites

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

live_versions as (

    select * from latest_versions
    where not is_deleted

),

requisites_latest as (

    {{ latest_landed_versions('requisites_source') }}

),

company_requisites as (

    select
        doc ->> 'ENTITY_ID' as company_record_id,
        record_id,
        nullif(trim(doc ->> 'RQ_INN'), '') as tax_id,
        updated_at
    from requisites_latest
    where not is_deleted and doc ->> 'ENTITY_TYPE_ID' = '4'

),

tax_ids as (

    select distinct on (company_record_id)
        company_record_id,
        tax_id
    from company_requisites
    where tax_id is not null
    order by company_record_id, length(record_id), record_id

),

requisite_changes as (

    select
        company_record_id,
        max(updated_at) as updated_at
    from company_requisites
    group by company_record_id

),

ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity in ('companies', 'users')

),

renamed as (

    select
        -- ids
        coalesce(account_ids.canonical_id, live_versions.record_id) as account_id,
        coalesce(owner_ids.canonical_id, nullif(nullif(live_versions.doc ->> 'ASSIGNED_BY_ID', ''), '0'))
            as owner_user_id,

        -- text
        nullif(live_versions.doc ->> 'TITLE', '') as account_name,
        tax_ids.tax_id,
        -- the first web address, without its scheme and path
        nullif(
            regexp_replace(
                jsonb_path_query_first(live_versions.doc, '$.WEB[*] ? (@.VALUE != "").VALUE') #>> '{}',
                '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*).*$',
                '\1'
            ),
            ''
        ) as domain,
        -- portal fields: INDUSTRY is a status-list id, not the text
        nullif(live_versions.doc ->> 'UF_CRM_INDUSTRY', '') as industry,
        nullif(live_versions.doc ->> 'UF_CRM_COUNTRY', '') as country,

        -- numbers
        (replace(nullif(trim(live_versions.doc ->> 'UF_CRM_EMPLOYEE_COUNT'), ''), ',', '.')::numeric)::integer
            as employee_count,

        -- timestamps (UTC; the API answers ISO 8601 with the portal's offset)
        nullif(live_versions.doc ->> 'DATE_CREATE', '')::timestamptz as created_at,
        greatest(live_versions.updated_at, requisite_changes.updated_at) as updated_at,

        -- lineage: the raw row
        live_versions.record_id as _record_id,
        live_versions._extracted_at,
        live_versions._dlt_load_id

    from live_versions
    left join ids as account_ids
        on account_ids.entity = 'companies' and live_versions.record_id = account_ids.bitrix_id
    left join ids as owner_ids
        on owner_ids.entity = 'users' and live_versions.doc ->> 'ASSIGNED_BY_ID' = owner_ids.bitrix_id
    left join tax_ids
        on live_versions.record_id = tax_ids.company_record_id
    left join requisite_changes
        on live_versions.record_id = requisite_changes.company_record_id

),

final as (

    select
        account_id,
        owner_user_id,
        account_name,
        tax_id,
        domain,
        industry,
        country,
        employee_count,
        created_at,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from renamed

)

select * from final
