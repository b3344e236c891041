{{ config(indexes=[{'columns': ['account_id']}]) }}

-- amoCRM companies as CRM accounts as of the cutoff, one row per account_id: the latest version
-- updated before the cutoff (on a tie a deletion wins), and no company whose latest version is a
-- deletion (a company_deleted event). The tax id and web site come from the company custom fields
-- the connector resolved (field_roles), the other fields from the field definitions by name.

with

source as (

    select * from {{ landed('amocrm', 'companies') }} as raw_companies

),

field_roles as (

    select * from {{ landed('amocrm', 'field_roles') }} as raw_field_roles

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

latest_field_roles as (

    select doc
    from field_roles
    where record_id = 'companies'
    order by _extracted_at desc
    limit 1

),

field_ids as (

    select
        (select (latest_field_roles.doc ->> 'tax_id')::bigint from latest_field_roles) as tax_id,
        (select (latest_field_roles.doc ->> 'web')::bigint from latest_field_roles) as web,
        min(custom_fields.field_id) filter (where custom_fields.field_name = 'Отрасль') as industry,
        min(custom_fields.field_id) filter (where custom_fields.field_name = 'Страна') as country,
        min(custom_fields.field_id) filter (
            where custom_fields.field_name = 'Количество сотрудников'
        ) as employee_count
    from custom_fields
    where custom_fields.entity = 'companies'

),

renamed as (

    select
        -- ids
        surviving.record_id::text as account_id,
        surviving.doc ->> 'responsible_user_id' as owner_user_id,

        -- text
        surviving.doc ->> 'name' as account_name,
        field_values.tax_id,
        field_values.domain,
        field_values.industry,
        field_values.country,

        -- numbers
        (replace(nullif(trim(field_values.employee_count), ''), ',', '.')::numeric)::integer as employee_count,

        -- timestamps (UTC; amoCRM gives Unix seconds)
        to_timestamp((surviving.doc ->> 'created_at')::bigint) as created_at,
        surviving.updated_at

    from surviving
    cross join field_ids
    left join lateral (
        select
            {{ amocrm_field_value('field_ids.tax_id') }} as tax_id,
            {{ amocrm_field_value('field_ids.web') }} as domain,
            {{ amocrm_field_value('field_ids.industry') }} as industry,
            {{ amocrm_field_value('field_ids.country') }} as country,
            {{ amocrm_field_value('field_ids.employee_count') }} as employee_count
        from {{ amocrm_custom_field_values('surviving.doc') }} as field
    ) as field_values on true

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
