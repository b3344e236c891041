{{ config(indexes=[{'columns': ['deal_id', 'contact_id']}]) }}

-- HubSpot contacts involved in deals as of the cutoff, one row per (deal_id, contact_id): the deal ->
-- contact associations of each deal's latest association read before the cutoff, for the deals of
-- stg_hubspot__deals. The role is the association's label (Decision maker, Influencer, User, Other:
-- lower case, spaces as underscores; another label is `other`), NULL without one. updated_at is the
-- deal's: HubSpot keeps no time per association.

with

associations as (

    select * from {{ ref('base_hubspot__associations') }}

),

deals as (

    select * from {{ ref('stg_hubspot__deals') }}

),

links as (

    select
        associations.from_id as deal_id,
        associations.to_id as contact_id,
        lower(regexp_replace(trim(associations.labels[1]), '\s+', '_', 'g')) as label_role,
        associations.updated_at
    from associations
    inner join deals
        on associations.from_id = deals.deal_id
    where associations.from_type = 'deals' and associations.to_type = 'contacts'

),

renamed as (

    select
        -- ids
        deal_id,
        contact_id,

        -- text
        case
            when label_role in ('decision_maker', 'influencer', 'user', 'other') then label_role
            when label_role is not null then 'other'
        end as role,

        -- timestamps (UTC)
        updated_at

    from links

),

final as (

    select distinct on (deal_id, contact_id)
        deal_id,
        contact_id,
        role,
        updated_at
    from renamed
    order by deal_id asc, contact_id asc, role asc nulls last

)

select * from final
