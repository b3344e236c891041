{{ config(indexes=[{'columns': ['deal_id']}]) }}

-- HubSpot deals as of the cutoff, one row per deal_id: the latest version updated before the cutoff
-- (on a tie a deletion wins), and no deal whose latest version is a deletion (archived). The account is
-- the deal's primary company (association deal -> company labelled Primary, else the first). The
-- status is `won` in a stage mapped to closing/post_sale, `lost` in one mapped to lost, else `open`;
-- closedate is the close time of a won or lost deal (HubSpot keeps the expected close date in it while
-- a deal is open, so the expected close date is a custom date property). The lead source and the
-- expected close date are the custom properties the connector's settings name (property_roles;
-- defaults `lead_source`, `expected_close_date`). The currency is deal_currency_code, else the
-- portal's company currency (account-info: a portal without multiple currencies leaves it empty).
-- updated_at also moves when the deal's contact links or stage change.

with

source as (

    select * from {{ landed('hubspot', 'deals') }} as raw_deals

),

associations as (

    select * from {{ ref('base_hubspot__associations') }}

),

stages as (

    select * from {{ ref('stg_hubspot__stages') }}

),

property_roles as (

    select * from {{ landed('hubspot', 'property_roles') }} as raw_property_roles

),

account as (

    select * from {{ landed('hubspot', 'account') }} as raw_account

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

latest_property_roles as (

    select property_roles.doc -> 'deals' as deal_roles
    from property_roles
    order by property_roles._extracted_at desc
    limit 1

),

latest_account as (

    select account.doc
    from account
    order by account._extracted_at desc
    limit 1

),

portal_settings as (

    select
        (select upper(trim(latest_account.doc ->> 'companyCurrency')) from latest_account) as company_currency,
        coalesce(
            (select latest_property_roles.deal_roles ->> 'lead_source' from latest_property_roles), 'lead_source'
        ) as lead_source,
        coalesce(
            (select latest_property_roles.deal_roles ->> 'expected_close_date' from latest_property_roles),
            'expected_close_date'
        ) as expected_close_date

),

surviving as (

    select
        record_id,
        doc -> 'properties' as properties,
        updated_at
    from latest_versions
    where not is_deleted

),

companies as (

    select distinct on (associations.from_id)
        associations.from_id as deal_id,
        associations.to_id as account_id
    from associations
    where associations.from_type = 'deals' and associations.to_type = 'companies'
    order by associations.from_id asc, associations.is_primary desc, associations.entry_order asc

),

renamed as (

    select
        -- ids
        surviving.record_id::text as deal_id,
        companies.account_id,
        nullif(surviving.properties ->> 'hubspot_owner_id', '') as owner_user_id,
        nullif(surviving.properties ->> 'pipeline', '') as pipeline_id,
        nullif(surviving.properties ->> 'dealstage', '') as stage_id,

        -- text
        nullif(surviving.properties ->> 'dealname', '') as deal_name,
        coalesce(
            upper(trim(nullif(surviving.properties ->> 'deal_currency_code', ''))), portal_settings.company_currency
        ) as currency,
        nullif(surviving.properties ->> 'closed_lost_reason', '') as lost_reason,
        nullif(surviving.properties ->> portal_settings.lead_source, '') as lead_source,

        -- numbers
        nullif(trim(surviving.properties ->> 'amount'), '')::numeric as amount,

        -- dates and timestamps (UTC; HubSpot gives ISO 8601 with Z)
        left(nullif(surviving.properties ->> portal_settings.expected_close_date, ''), 10)::date
            as expected_close_date,
        (surviving.properties ->> 'createdate')::timestamptz as created_at,
        nullif(surviving.properties ->> 'closedate', '')::timestamptz as close_date,
        surviving.updated_at

    from surviving
    cross join portal_settings
    left join companies
        on surviving.record_id = companies.deal_id

),

final as (

    select
        renamed.deal_id,
        renamed.account_id,
        renamed.owner_user_id,
        renamed.pipeline_id,
        renamed.stage_id,
        renamed.deal_name,
        case
            when stages.canonical_stage in ('closing', 'post_sale') then 'won'
            when stages.canonical_stage = 'lost' then 'lost'
            else 'open'
        end as status,
        renamed.currency,
        renamed.lost_reason,
        renamed.lead_source,
        renamed.amount,
        renamed.expected_close_date,
        renamed.created_at,
        case
            when stages.canonical_stage in ('closing', 'post_sale', 'lost') then renamed.close_date
        end as closed_at,
        renamed.updated_at
    from renamed
    left join stages
        on renamed.stage_id = stages.stage_id

)

select * from final
