{{ config(indexes=[{'columns': ['account_id']}]) }}

-- HubSpot companies as CRM accounts as of the cutoff, one row per account_id: the latest version
-- updated before the cutoff (on a tie a deletion wins), and no company whose latest version is a
-- deletion (archived). Properties are strings: numbers and timestamps are cast here; the tax id is
-- the custom company property the connector's settings name (property_roles; default `tax_id`).

with

source as (

    select * from {{ landed('hubspot', 'companies') }} as raw_companies

),

property_roles as (

    select * from {{ landed('hubspot', 'property_roles') }} as raw_property_roles

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

latest_property_roles as (

    select property_roles.doc -> 'companies' as company_roles
    from property_roles
    order by property_roles._extracted_at desc
    limit 1

),

tax_id_property as (

    select
        coalesce(
            (select latest_property_roles.company_roles ->> 'tax_id' from latest_property_roles), 'tax_id'
        ) as property_name

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
        surviving.record_id::text as account_id,
        nullif(surviving.properties ->> 'hubspot_owner_id', '') as owner_user_id,

        -- text
        nullif(surviving.properties ->> 'name', '') as account_name,
        nullif(surviving.properties ->> tax_id_property.property_name, '') as tax_id,
        nullif(surviving.properties ->> 'domain', '') as domain,
        nullif(surviving.properties ->> 'industry', '') as industry,
        nullif(surviving.properties ->> 'country', '') as country,

        -- numbers
        (nullif(trim(surviving.properties ->> 'numberofemployees'), '')::numeric)::integer as employee_count,

        -- timestamps (UTC; HubSpot gives ISO 8601 with Z)
        (surviving.properties ->> 'createdate')::timestamptz as created_at,
        surviving.updated_at

    from surviving
    cross join tax_id_property

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
