-- Billing customers matched to CRM accounts (docs/metrics.md, "Accounts"), one row per billing customer.
-- The first rule that holds wins:
--   1. crm_account_id names an existing CRM account;
--   2. the tax id, digits only and non-empty, equals the (digits-only) tax id of exactly one CRM account;
--   3. the email domain, lower-cased and without a leading `www.`, equals the domain (normalised
--      the same way) of exactly one CRM account;
-- otherwise the customer is an account of its own (billing only, match_method `unmatched`).

with

billing_customers as (

    select * from {{ ref('int_billing_customers_unioned') }}

),

crm_accounts as (

    select * from {{ ref('int_crm_accounts_unioned') }}

),

crm_accounts_normalised as (

    select
        crm_account_key,
        source_system,
        account_id,
        nullif(regexp_replace(tax_id, '[^0-9]', '', 'g'), '') as tax_id_digits,
        nullif(regexp_replace(lower(domain), '^www\.', ''), '') as domain_normalised
    from crm_accounts

),

crm_tax_ids as (

    select
        source_system,
        tax_id_digits,
        min(crm_account_key) as crm_account_key,
        count(*) as crm_account_count
    from crm_accounts_normalised
    where tax_id_digits is not null
    group by source_system, tax_id_digits

),

crm_domains as (

    select
        source_system,
        domain_normalised,
        min(crm_account_key) as crm_account_key,
        count(*) as crm_account_count
    from crm_accounts_normalised
    where domain_normalised is not null
    group by source_system, domain_normalised

),

billing_customers_normalised as (

    select
        *,
        nullif(regexp_replace(tax_id, '[^0-9]', '', 'g'), '') as tax_id_digits,
        nullif(regexp_replace(lower(email_domain), '^www\.', ''), '') as email_domain_normalised
    from billing_customers

),

matched as (

    select
        billing_customers_normalised.billing_customer_key,
        billing_customers_normalised.source_system,
        billing_customers_normalised.customer_id,
        billing_customers_normalised.crm_source_system,
        billing_customers_normalised.crm_account_id,
        billing_customers_normalised.tax_id_digits,
        billing_customers_normalised.email_domain_normalised,
        by_crm_account_id.crm_account_key as crm_account_key_by_id,
        by_tax_id.crm_account_key as crm_account_key_by_tax_id,
        by_domain.crm_account_key as crm_account_key_by_domain
    from billing_customers_normalised
    left join crm_accounts_normalised as by_crm_account_id
        on
            billing_customers_normalised.crm_source_system = by_crm_account_id.source_system
            and billing_customers_normalised.crm_account_id = by_crm_account_id.account_id
    left join crm_tax_ids as by_tax_id
        on
            billing_customers_normalised.crm_source_system = by_tax_id.source_system
            and billing_customers_normalised.tax_id_digits = by_tax_id.tax_id_digits
            and by_tax_id.crm_account_count = 1
    left join crm_domains as by_domain
        on
            billing_customers_normalised.crm_source_system = by_domain.source_system
            and billing_customers_normalised.email_domain_normalised = by_domain.domain_normalised
            and by_domain.crm_account_count = 1

),

final as (

    select
        billing_customer_key,
        source_system,
        customer_id,
        crm_account_id,
        tax_id_digits,
        email_domain_normalised,
        coalesce(crm_account_key_by_id, crm_account_key_by_tax_id, crm_account_key_by_domain)
            as matched_crm_account_key,
        case
            when crm_account_key_by_id is not null then 'crm_account_id'
            when crm_account_key_by_tax_id is not null then 'tax_id'
            when crm_account_key_by_domain is not null then 'domain'
            else 'unmatched'
        end as match_method,
        coalesce(
            crm_account_key_by_id, crm_account_key_by_tax_id, crm_account_key_by_domain, billing_customer_key
        ) as account_key
    from matched

)

select * from final
