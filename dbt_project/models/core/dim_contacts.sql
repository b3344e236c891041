{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['contact_key'], 'unique': True}
        ],
        pre_hook="{{ core_patch_forget('contact_key', dim_contacts_to_recompute, dim_contacts_upstreams()) }}",
        post_hook="{{ core_patch_remember(dim_contacts_upstreams()) }}"
    )
}}

-- Contacts: one row per CRM contact as of the cutoff. E-mail and phone are never stored in plain
-- text: only their hashes (e-mail lower-cased, phone digits only) and the e-mail's domain.
-- `role` is the contact's role on its most recently updated deal link (NULL without one).
-- Incremental: a night recomputes only the contacts whose record or deal links can have changed
-- since the dimension's last run, and those of a CRM account that can have appeared or disappeared
-- (macros/core_patch.sql); the candidate schema carries the dimension over.
-- depends_on: {{ ref('base_files__contacts') }}, {{ ref('base_files__deal_contacts') }}
-- depends_on: {{ ref('base_files__accounts') }}, {{ ref('stg_files__contacts') }}
-- depends_on: {{ ref('stg_files__deal_contacts') }}, {{ ref('stg_files__accounts') }}

with

contacts as (

    select * from {{ ref('int_contacts_unioned') }}
    where {{ core_patch_only_changed('contact_key', dim_contacts_upstreams()) }}

),

deal_contacts as (

    select * from {{ ref('int_deal_contacts_unioned') }}
    where {{ core_patch_only_changed('contact_key', dim_contacts_upstreams()) }}

),

accounts as (

    select * from {{ ref('int_accounts_unified') }}

),

-- One sort serves both the role and the deal count: within a contact's links, those with a role
-- come first, most recently updated first (ties: highest deal_key). The partition only groups (it
-- never orders the output), so it uses the byte-wise "C" collation, which sorts faster.
deal_contacts_ranked as (

    select
        contact_key,
        role,
        row_number() over contact_links as link_rank,
        count(*) over (partition by contact_key collate "C") as deal_count
    from deal_contacts
    window contact_links as (
        partition by contact_key collate "C"
        order by role is null asc, updated_at desc, deal_key desc
    )

),

-- One row per contact with a deal link: its role (NULL when none of its links has one) and count.
contact_deal_links as (

    select
        contact_key,
        role,
        deal_count
    from deal_contacts_ranked
    where link_rank = 1

),

-- The normalized e-mail (trimmed, lower-cased) and the phone's digits, each computed once per
-- contact. lower() maps character by character and never yields or removes an '@', so the domain
-- can be split from the lower-cased e-mail. The inner translate lists the phone's non-digit
-- characters and the outer one deletes them: the same result as regexp_replace(phone, '[^0-9]',
-- '', 'g'), without the regular expression engine.
contacts_normalized as (

    select
        *,
        lower(trim(email)) as email_normalized,
        translate(phone, translate(phone, '0123456789', ''), '') as phone_digits
    from contacts

),

final as (

    select
        contacts_normalized.contact_key,
        contacts_normalized.source_system,
        contacts_normalized.contact_id,
        accounts.account_key,
        contacts_normalized.account_id as crm_account_id,
        contacts_normalized.full_name,
        contacts_normalized.job_title,
        contact_deal_links.role,
        coalesce(contact_deal_links.deal_count, 0) as deal_count,
        case
            when nullif(contacts_normalized.email_normalized, '') is not null
                then {{ dbt.hash("contacts_normalized.email_normalized") }}
        end as email_hash,
        nullif(split_part(contacts_normalized.email_normalized, '@', 2), '') as email_domain,
        case
            when nullif(contacts_normalized.phone_digits, '') is not null
                then {{ dbt.hash("contacts_normalized.phone_digits") }}
        end as phone_hash,
        contacts_normalized.created_at,
        contacts_normalized.updated_at
    from contacts_normalized
    left join accounts
        on contacts_normalized.crm_account_key = accounts.account_key
    left join contact_deal_links
        on contacts_normalized.contact_key = contact_deal_links.contact_key

)

select * from final
