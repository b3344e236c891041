{{
    config(
        indexes=[{'columns': ['deal_id', 'contact_id']}]
    )
}}

-- The contacts of the Bitrix24 portal's deals as of the cutoff, one row per (deal, contact)
-- (MAPPING.md, "deal_contacts"): each deal's links are one raw record (record_id = the deal's ID)
-- whose versions are the deal's whole list of links as of a deal version: the latest list changed
-- before the cutoff, of the deals current as of the cutoff (stg_bitrix24__deals; a deleted deal's
-- links go with it). role from ROLE_ID (1 decision_maker, 2 influencer, 3 user, 4 other; real
-- portals answer 0, unknown: NULL); updated_at: the deal's DATE_MODIFY (a link has no time of its
-- own).

with

source as (

    select * from {{ landed('bitrix24', 'deal_contacts') }} as deal_contacts

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

live_versions as (

    select * from latest_versions
    where not is_deleted

),

deals as (

    select * from {{ ref('stg_bitrix24__deals') }}

),

contact_ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity = 'contacts'

),

links as (

    select
        live_versions.record_id,
        live_versions.updated_at,
        live_versions._extracted_at,
        live_versions._dlt_load_id,
        contact_links.link,
        contact_links.link_position
    from live_versions
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(live_versions.doc -> 'CONTACTS') = 'array' then live_versions.doc -> 'CONTACTS'
            else '[]'::jsonb
        end
    ) with ordinality as contact_links (link, link_position)

),

renamed as (

    select
        -- ids
        deals.deal_id,
        coalesce(contact_ids.canonical_id, links.link ->> 'CONTACT_ID') as contact_id,

        -- text
        case links.link ->> 'ROLE_ID'
            when '1' then 'decision_maker'
            when '2' then 'influencer'
            when '3' then 'user'
            when '4' then 'other'
        end as role,

        -- timestamps (UTC)
        links.updated_at,

        -- lineage: the raw row
        links.record_id as _record_id,
        links._extracted_at,
        links._dlt_load_id,
        links.link_position

    from links
    inner join deals
        on links.record_id = deals._record_id
    left join contact_ids
        on links.link ->> 'CONTACT_ID' = contact_ids.bitrix_id
    where nullif(nullif(links.link ->> 'CONTACT_ID', ''), '0') is not null

),

deduplicated as (

    select distinct on (deal_id, contact_id) *
    from renamed
    order by deal_id, contact_id, link_position

),

final as (

    select
        deal_id,
        contact_id,
        role,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from deduplicated

)

select * from final
