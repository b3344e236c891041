{{
    config(
        indexes=[
            {'columns': ['contact_key'], 'unique': True}
        ]
    )
}}

-- Contacts: one row per CRM contact as of the cutoff. E-mail and phone are never stored in plain
-- text: only their hashes (e-mail lower-cased, phone digits only) and the e-mail's domain.
-- `role` is the contact's role on its most recently updated deal link (NULL without one).

with

contacts as (

    select * from {{ ref('int_contacts_unioned') }}

),

deal_contacts as (

    select * from {{ ref('int_deal_contacts_unioned') }}

),

accounts as (

    select * from {{ ref('int_accounts_unified') }}

),

contact_roles as (

    select distinct on (contact_key)
        contact_key,
        role
    from deal_contacts
    where role is not null
    order by contact_key asc, updated_at desc, deal_key desc

),

contact_deal_counts as (

    select
        contact_key,
        count(*) as deal_count
    from deal_contacts
    group by contact_key

),

final as (

    select
        contacts.contact_key,
        contacts.source_system,
        contacts.contact_id,
        accounts.account_key,
        contacts.account_id as crm_account_id,
        contacts.full_name,
        contacts.job_title,
        contact_roles.role,
        coalesce(contact_deal_counts.deal_count, 0) as deal_count,
        case
            when nullif(trim(contacts.email), '') is not null
                then {{ dbt.hash("lower(trim(contacts.email))") }}
        end as email_hash,
        nullif(lower(split_part(trim(contacts.email), '@', 2)), '') as email_domain,
        case
            when nullif(regexp_replace(contacts.phone, '[^0-9]', '', 'g'), '') is not null
                then {{ dbt.hash("regexp_replace(contacts.phone, '[^0-9]', '', 'g')") }}
        end as phone_hash,
        contacts.created_at,
        contacts.updated_at
    from contacts
    left join accounts
        on contacts.crm_account_key = accounts.account_key
    left join contact_roles
        on contacts.contact_key = contact_roles.contact_key
    left join contact_deal_counts
        on contacts.contact_key = contact_deal_counts.contact_key

)

select * from final
