{{ config(indexes=[{'columns': ['contact_id']}]) }}

-- HubSpot contacts as of the cutoff, one row per contact_id: the latest version updated before the
-- cutoff (lastmodifieddate; on a tie a deletion wins), and no contact whose latest version is a
-- deletion (archived). The full name is firstname and lastname; the account the contact's primary
-- company (associatedcompanyid).

with

source as (

    select * from {{ landed('hubspot', 'contacts') }} as raw_contacts

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
        record_id::text as contact_id,
        nullif(properties ->> 'associatedcompanyid', '') as account_id,

        -- text
        nullif(
            concat_ws(' ', nullif(properties ->> 'firstname', ''), nullif(properties ->> 'lastname', '')), ''
        ) as full_name,
        nullif(properties ->> 'email', '') as email,
        nullif(properties ->> 'phone', '') as phone,
        nullif(properties ->> 'jobtitle', '') as job_title,

        -- timestamps (UTC; HubSpot gives ISO 8601 with Z)
        (properties ->> 'createdate')::timestamptz as created_at,
        updated_at

    from surviving

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
        updated_at
    from renamed

)

select * from final
