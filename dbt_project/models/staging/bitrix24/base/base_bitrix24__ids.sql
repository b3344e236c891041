{{
    config(
        indexes=[{'columns': ['entity', 'bitrix_id'], 'unique': True}]
    )
}}

{%- set originator = var('bitrix24_originator', 'b2b-file-drop') | replace("'", "''") %}
{%- if var('bitrix24_user_xml_id', false) %}
{%- set user_id = "coalesce(nullif(doc ->> 'XML_ID', ''), doc ->> 'ID', record_id)" %}
{%- else %}
{%- set user_id = "coalesce(doc ->> 'ID', record_id)" %}
{%- endif %}

-- The canonical id of every Bitrix24 record another stream refers to, by stream (`entity`) and
-- Bitrix24 id: users, companies, contacts, deals (their integer ID), deal categories (their id;
-- the canonical id is the category name, the pipeline_id) and deal stages (their STATUS_ID; the
-- canonical id is the stage_id). Built from every version, deleted records included, whatever the
-- cutoff: a deal that points at a deleted company keeps the company's canonical id (an orphan the
-- quality gate counts, not a NULL). MAPPING.md, "Ids":
--   - a record imported from another system keeps that system's id in ORIGIN_ID, the system's
--     name in ORIGINATOR_ID: when that name is var('bitrix24_originator') (default: the file drop's
--     'b2b-file-drop'), the canonical id is ORIGIN_ID, else the Bitrix24 ID; users: XML_ID when
--     var('bitrix24_user_xml_id') is true, else the ID;
--   - stages: the STATUS_ID without Bitrix24's `C<n>:` funnel prefix, unless another funnel has a
--     stage of the same name (the standard NEW, WON... of every funnel): then the whole STATUS_ID.

with

users as (

    select * from {{ landed('bitrix24', 'users') }} as raw_users

),

companies as (

    select * from {{ landed('bitrix24', 'companies') }} as companies

),

contacts as (

    select * from {{ landed('bitrix24', 'contacts') }} as contacts

),

deals as (

    select * from {{ landed('bitrix24', 'deals') }} as deals

),

deal_categories as (

    select * from {{ landed('bitrix24', 'deal_categories') }} as deal_categories

),

deal_stages as (

    select * from {{ landed('bitrix24', 'deal_stages') }} as deal_stages

),

-- every live version, the latest first (a deletion version carries only the ID)
crm_versions as (

    select
        'users' as entity,
        users.*
    from users
    where not users.is_deleted

    union all

    select
        'companies' as entity,
        companies.*
    from companies
    where not companies.is_deleted

    union all

    select
        'contacts' as entity,
        contacts.*
    from contacts
    where not contacts.is_deleted

    union all

    select
        'deals' as entity,
        deals.*
    from deals
    where not deals.is_deleted

),

crm_ids as (

    select distinct on (entity, record_id)
        entity,
        record_id as bitrix_id,
        case
            when entity = 'users' then {{ user_id }}
            when
                doc ->> 'ORIGINATOR_ID' = '{{ originator }}'
                and nullif(doc ->> 'ORIGIN_ID', '') is not null
                then doc ->> 'ORIGIN_ID'
            else coalesce(doc ->> 'ID', record_id)
        end as canonical_id
    from crm_versions
    order by entity asc, record_id asc, coalesce(updated_at, _extracted_at) desc, _extracted_at desc

),

category_ids as (

    select distinct on (record_id)
        'deal_categories' as entity,
        record_id as bitrix_id,
        coalesce(nullif(doc ->> 'name', ''), record_id) as canonical_id
    from deal_categories
    where not is_deleted
    order by record_id asc, coalesce(updated_at, _extracted_at) desc, _extracted_at desc

),

stage_codes as (

    select distinct
        record_id as status_id,
        regexp_replace(record_id, '^C[0-9]+:', '') as stage_code
    from deal_stages

),

stage_ids as (

    select
        'deal_stages' as entity,
        status_id as bitrix_id,
        case
            when count(*) over (partition by stage_code) > 1 then status_id
            else stage_code
        end as canonical_id
    from stage_codes

),

final as (

    select
        entity,
        bitrix_id,
        canonical_id
    from crm_ids

    union all

    select
        entity,
        bitrix_id,
        canonical_id
    from category_ids

    union all

    select
        entity,
        bitrix_id,
        canonical_id
    from stage_ids

)

select * from final
