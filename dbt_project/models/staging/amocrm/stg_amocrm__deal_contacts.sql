{{ config(indexes=[{'columns': ['deal_id', 'contact_id']}]) }}

-- amoCRM contacts involved in deals as of the cutoff, one row per (deal_id, contact_id): the contact
-- links (_embedded.contacts) of the latest version of each lead before the cutoff (a link removed
-- from a lead is absent from its next version; a deleted lead has no links). The role comes from the
-- lead's textarea custom field "Роли контактов" (`<contact id>=<role>;...`, an empty role is NULL);
-- without that field, `decision_maker` for the main contact and `other` for the others.
-- updated_at is the lead's: amoCRM keeps no time per link.

with

source as (

    select * from {{ landed('amocrm', 'leads') }} as raw_leads

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

roles_field as (

    select min(custom_fields.field_id) as field_id
    from custom_fields
    where custom_fields.entity = 'leads' and custom_fields.field_name = 'Роли контактов'

),

leads as (

    select
        surviving.record_id,
        surviving.doc,
        surviving.updated_at,
        (
            select {{ amocrm_field_value('roles_field.field_id') }}
            from {{ amocrm_custom_field_values('surviving.doc') }} as field
        ) as contact_roles
    from surviving
    cross join roles_field

),

links as (

    select
        leads.record_id::text as deal_id,
        link.value ->> 'id' as contact_id,
        coalesce((link.value ->> 'is_main')::boolean, false) as is_main,
        leads.contact_roles,
        leads.updated_at
    from leads
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(leads.doc -> '_embedded' -> 'contacts') = 'array'
                then leads.doc -> '_embedded' -> 'contacts'
            else '[]'::jsonb
        end
    ) as link

),

roles as (

    select
        leads.record_id::text as deal_id,
        trim(split_part(entry.entry, '=', 1)) as contact_id,
        nullif(trim(substr(entry.entry, strpos(entry.entry, '=') + 1)), '') as role
    from leads
    cross join lateral unnest(string_to_array(leads.contact_roles, ';')) as entry (entry)
    where strpos(entry.entry, '=') > 0

),

renamed as (

    select distinct on (links.deal_id, links.contact_id)
        -- ids
        links.deal_id,
        links.contact_id,

        -- text
        lower(trim(
            case
                when links.contact_roles is not null then roles.role
                when links.is_main then 'decision_maker'
                else 'other'
            end
        )) as role,

        -- timestamps (UTC)
        links.updated_at

    from links
    left join roles
        on
            links.deal_id = roles.deal_id
            and links.contact_id = roles.contact_id
    order by links.deal_id asc, links.contact_id asc, links.is_main desc

),

final as (

    select
        deal_id,
        contact_id,
        role,
        updated_at
    from renamed

)

select * from final
