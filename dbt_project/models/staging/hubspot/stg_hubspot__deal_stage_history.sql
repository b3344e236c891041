{{ config(indexes=[{'columns': ['deal_id', 'stage_id', 'entered_at']}]) }}

-- HubSpot stage entries of deals before the cutoff, one row per distinct (deal_id, stage_id,
-- entered_at): every entry of propertiesWithHistory.dealstage (the value and its timestamp) of every
-- version of a deal landed before the cutoff, so that an entry is kept whichever version carried it
-- and a deal that re-enters a stage keeps each entry. Only the deals of stg_hubspot__deals (an archived
-- deal has no history in the marts).

with

source as (

    select * from {{ landed('hubspot', 'deals') }} as raw_deals

),

deals as (

    select * from {{ ref('stg_hubspot__deals') }}

),

versions as (

    select
        record_id,
        doc
    from source
    where updated_at < {{ cutoff() }} and not is_deleted

),

renamed as (

    select
        -- ids
        versions.record_id::text as deal_id,
        entry.value ->> 'value' as stage_id,

        -- timestamps (UTC; HubSpot gives ISO 8601 with Z)
        (entry.value ->> 'timestamp')::timestamptz as entered_at

    from versions
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(versions.doc -> 'propertiesWithHistory' -> 'dealstage') = 'array'
                then versions.doc -> 'propertiesWithHistory' -> 'dealstage'
            else '[]'::jsonb
        end
    ) as entry

),

deduplicated as (

    select distinct
        renamed.deal_id,
        renamed.stage_id,
        renamed.entered_at
    from renamed
    inner join deals
        on renamed.deal_id = deals.deal_id
    where
        renamed.stage_id is not null
        and renamed.entered_at < {{ cutoff() }}

),

final as (

    select
        deal_id,
        stage_id,
        entered_at
    from deduplicated

)

select * from final
