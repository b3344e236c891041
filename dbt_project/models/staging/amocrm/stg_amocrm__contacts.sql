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

    select * from {{ ref('base_amocrm__custom_fields') }}

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where not is_deleted

),

field_ids as (

    select
        min(custom_fields.field_id) filter (where custom_fields.field_code = 'EMAIL') as email,
        min(custom_fields.field_id) filter (where custom_fields.field_code = 'PHONE') as phone,
        min(custom_fields.field_id) filter (where custom_fields.field_code = 'POSITION') as job_title
    from custom_fields
    where custom_fields.entity = 'contacts'

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
            {{ amocrm_field_value('field_ids.email') }} as email,
            {{ amocrm_field_value('field_ids.phone') }} as phone,
            {{ amocrm_field_value('field_ids.job_title') }} as job_title
        from {{ amocrm_custom_field_values('surviving.doc') }} as field
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
