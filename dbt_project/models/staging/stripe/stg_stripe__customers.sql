{{ config(indexes=[{'columns': ['customer_id']}]) }}

-- Stripe customers as billing customers as of the cutoff, one row per customer_id: the latest
-- version updated before the cutoff (on a tie a deletion wins), and no customer whose latest
-- version is a deletion (customer.deleted). The CRM account id is metadata.crm_account_id, the
-- tax id the first of the expanded tax_ids, the e-mail domain the domain of the customer's e-mail.

with

source as (

    select * from {{ landed('stripe', 'customers') }} as raw_customers

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where not is_deleted

),

renamed as (

    select
        -- ids
        surviving.record_id::text as customer_id,
        nullif(trim(surviving.doc -> 'metadata' ->> 'crm_account_id'), '') as crm_account_id,

        -- text
        surviving.doc ->> 'name' as customer_name,
        (
            select tax_id.value ->> 'value'
            from
                jsonb_array_elements(
                    coalesce(surviving.doc -> 'tax_ids' -> 'data', '[]'::jsonb)
                ) with ordinality as tax_id (value, position)
            order by tax_id.position
            limit 1
        ) as tax_id,
        nullif(split_part(surviving.doc ->> 'email', '@', 2), '') as email_domain,
        upper(trim(surviving.doc ->> 'currency')) as currency,

        -- timestamps (UTC; Stripe gives Unix seconds)
        to_timestamp((surviving.doc ->> 'created')::bigint) as created_at,
        -- Stripe's whole second (the connector orders the versions of one second within it)
        date_trunc('second', surviving.updated_at) as updated_at

    from surviving

),

final as (

    select
        customer_id,
        crm_account_id,
        customer_name,
        tax_id,
        email_domain,
        currency,
        created_at,
        updated_at
    from renamed

)

select * from final
