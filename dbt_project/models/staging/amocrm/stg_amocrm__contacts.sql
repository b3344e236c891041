{{ config(indexes=[{'columns': ['contact_id']}]) }}

-- amoCRM contacts as of the cutoff, one row per contact_id: the latest version updated before the
-- cutoff (on a tie a deletion wins), and no contact whose latest version is a deletion (a
-- contact_deleted event). E-mail, phone and job title are the predefined custom fields EMAIL, PHONE
-- and POSITION (their first value); the account is the contact's first linked company.

with

source as (

    select * from {{ landed('amocrm', 'contacts') }} as raw_contacts

),

custom_fields as (

    select * from {{ landed('amocrm', 'custom_fields') }} as raw_custom_fields

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where not is_deleted

),

contact_fields as (

    select distinct on (record_id) doc
    from custom_fields
    where record_id like 'contacts:%'
    order by record_id asc, _extracted_at desc

),

field_ids as (

    select
        (
            select min((contact_fields.doc ->> 'id')::bigint) from contact_fields
            where contact_fields.doc ->> 'code' = 'EMAIL'
        ) as email,
        (
            select min((contact_fields.doc ->> 'id')::bigint) from contact_fields
            where contact_fields.doc ->> 'code' = 'PHONE'
        ) as phone,
        (
            select min((contact_fields.doc ->> 'id')::bigint) from contact_fields
            where contact_fields.doc ->> 'code' = 'POSITION'
        ) as job_title

),

renamed as (

    select
        -- ids
        surviving.record_id::text as contact_id,
        surviving.doc -> '_embedded' -> 'companies' -> 0 ->> 'id' as account_id,

        -- text
        nullif(surviving.doc ->> 'name', '') as full_name,
        field_values.email,
        field_values.phone,
        field_values.job_title,

        -- timestamps (UTC; amoCRM gives Unix seconds)
        to_timestamp((surviving.doc ->> 'created_at')::bigint) as created_at,
        surviving.updated_at

    from surviving
    cross join field_ids
    left join lateral (
        select
            max(field.value -> 'values' -> 0 ->> 'value')
            filter (where (field.value ->> 'field_id')::bigint = field_ids.email) as email,
            max(field.value -> 'values' -> 0 ->> 'value')
            filter (where (field.value ->> 'field_id')::bigint = field_ids.phone) as phone,
            max(field.value -> 'values' -> 0 ->> 'value')
            filter (where (field.value ->> 'field_id')::bigint = field_ids.job_title) as job_title
        from jsonb_array_elements(
            case
                when jsonb_typeof(surviving.doc -> 'custom_fields_values') = 'array'
                    then surviving.doc -> 'custom_fields_values'
                else '[]'::jsonb
            end
        ) as field
    ) as field_values on true

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
