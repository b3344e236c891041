{{ config(indexes=[{'columns': ['account_id']}]) }}

-- HubSpot companies as CRM accounts as of the cutoff, one row per account_id: the latest version
-- updated before the cutoff (on a tie a deletion wins), and no company whose latest version is a
-- deletion (archived). Properties are strings: numbers and timestamps are cast here; the tax id is
-- the custom company property `tax_id` (sources/hubspot/MAPPING.md).

with

source as (

    select * from {{ landed('hubspot', 'companies') }} as raw_companies

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select
        record_id,
        doc -> 'properties' as properties,
        updated_at
    from latest_versions
    where not is_deleted

),

renamed as (

    select
        -- ids
        record_id::text as account_id,
        nullif(properties ->> 'hubspot_owner_id', '') as owner_user_id,

        -- text
        nullif(properties ->> 'name', '') as account_name,
        nullif(properties ->> 'tax_id', '') as tax_id,
        nullif(properties ->> 'domain', '') as domain,
        nullif(properties ->> 'industry', '') as industry,
        nullif(properties ->> 'country', '') as country,

        -- numbers
        (nullif(trim(properties ->> 'numberofemployees'), '')::numeric)::integer as employee_count,

        -- timestamps (UTC; HubSpot gives ISO 8601 with Z)
        (properties ->> 'createdate')::timestamptz as created_at,
        updated_at

    from surviving

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
        updated_at
    from renamed

)

select * from final
