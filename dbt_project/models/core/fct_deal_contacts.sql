-- The people involved in a deal: one row per (existing deal, existing contact), with the contact's role.

with

deal_contacts as (

    select * from {{ ref('int_deal_contacts_unioned') }}

),

deals as (

    select * from {{ ref('int_deals_unioned') }}

),

contacts as (

    select * from {{ ref('int_contacts_unioned') }}

),

final as (

    select
        deal_contacts.deal_key,
        deal_contacts.contact_key,
        deal_contacts.source_system,
        deal_contacts.deal_id,
        deal_contacts.contact_id,
        deal_contacts.role,
        deal_contacts.updated_at
    from deal_contacts
    inner join deals
        on deal_contacts.deal_key = deals.deal_key
    inner join contacts
        on deal_contacts.contact_key = contacts.contact_key

)

select * from final
