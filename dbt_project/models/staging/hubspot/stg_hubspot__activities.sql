{{ config(indexes=[{'columns': ['activity_id']}]) }}

-- HubSpot engagements as activities as of the cutoff, one row per activity_id: the calls, emails and
-- meetings (engagement ids are unique across them), each the latest version updated before the cutoff
-- (on a tie a deletion wins), none whose latest version is a deletion (archived). The channel: calls
-- -> call, emails -> email, meetings by their hs_activity_type (Webinar, Social, Event), a meeting
-- without one -> meeting, any other type -> other. The company and contact are the engagement's first
-- association of each type (the latest association read before the cutoff). The deal is the freshest
-- of two readings: the engagement's own association to deals, and a deal's association listing the
-- engagement (on a tie the engagement's own): linking an engagement to a new deal changes neither
-- record's last-modified date, so the engagement is not read again, but the new deal is.

with

calls as (

    select * from {{ landed('hubspot', 'calls') }} as raw_calls

),

emails as (

    select * from {{ landed('hubspot', 'emails') }} as raw_emails

),

meetings as (

    select * from {{ landed('hubspot', 'meetings') }} as raw_meetings

),

associations as (

    select * from {{ ref('base_hubspot__associations') }}

),

latest_calls as (

    {{ latest_landed_versions('calls') }}

),

latest_emails as (

    {{ latest_landed_versions('emails') }}

),

latest_meetings as (

    {{ latest_landed_versions('meetings') }}

),

source as (

    select
        'calls' as object_type,
        record_id,
        is_deleted,
        doc,
        updated_at
    from latest_calls
    union all
    select
        'emails' as object_type,
        record_id,
        is_deleted,
        doc,
        updated_at
    from latest_emails
    union all
    select
        'meetings' as object_type,
        record_id,
        is_deleted,
        doc,
        updated_at
    from latest_meetings

),

surviving as (

    select
        object_type,
        record_id,
        doc -> 'properties' as properties,
        updated_at
    from source
    where not is_deleted

),

first_links as (

    select distinct on (associations.from_type, associations.from_id, associations.to_type)
        associations.from_type,
        associations.from_id,
        associations.to_type,
        associations.to_id,
        associations.updated_at
    from associations
    where associations.from_type in ('calls', 'emails', 'meetings')
    order by
        associations.from_type asc,
        associations.from_id asc,
        associations.to_type asc,
        associations.is_primary desc,
        associations.entry_order asc

),

deal_readings as (

    select
        first_links.from_type as object_type,
        first_links.from_id as activity_id,
        first_links.to_id as deal_id,
        first_links.updated_at,
        1 as is_own
    from first_links
    where first_links.to_type = 'deals'
    union all
    select
        associations.to_type as object_type,
        associations.to_id as activity_id,
        associations.from_id as deal_id,
        associations.updated_at,
        0 as is_own
    from associations
    where
        associations.from_type = 'deals'
        and associations.to_type in ('calls', 'emails', 'meetings')

),

deal_links as (

    select distinct on (deal_readings.object_type, deal_readings.activity_id)
        deal_readings.object_type,
        deal_readings.activity_id,
        deal_readings.deal_id
    from deal_readings
    order by
        deal_readings.object_type asc,
        deal_readings.activity_id asc,
        deal_readings.updated_at desc,
        deal_readings.is_own desc,
        deal_readings.deal_id asc

),

links as (

    select
        first_links.from_type,
        first_links.from_id,
        max(first_links.to_id) filter (where first_links.to_type = 'companies') as account_id,
        max(first_links.to_id) filter (where first_links.to_type = 'contacts') as contact_id
    from first_links
    group by first_links.from_type, first_links.from_id

),

renamed as (

    select
        -- ids
        surviving.record_id::text as activity_id,
        deal_links.deal_id,
        links.account_id,
        links.contact_id,
        nullif(surviving.properties ->> 'hubspot_owner_id', '') as owner_user_id,

        -- text
        case surviving.object_type
            when 'calls' then 'call'
            when 'emails' then 'email'
            else
                case
                    when surviving.properties ->> 'hs_activity_type' is null then 'meeting'
                    when lower(surviving.properties ->> 'hs_activity_type') in ('webinar', 'social', 'event')
                        then lower(surviving.properties ->> 'hs_activity_type')
                    else 'other'
                end
        end as channel,

        -- timestamps (UTC; HubSpot gives ISO 8601 with Z)
        (surviving.properties ->> 'hs_timestamp')::timestamptz as occurred_at,
        surviving.updated_at

    from surviving
    left join links
        on
            surviving.object_type = links.from_type
            and surviving.record_id = links.from_id
    left join deal_links
        on
            surviving.object_type = deal_links.object_type
            and surviving.record_id = deal_links.activity_id

),

final as (

    select
        activity_id,
        deal_id,
        account_id,
        contact_id,
        owner_user_id,
        channel,
        occurred_at,
        updated_at
    from renamed

)

select * from final
