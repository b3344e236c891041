{{ config(indexes=[{'columns': ['deal_id', 'stage_id', 'entered_at']}]) }}

-- amoCRM stage entries of deals before the cutoff, one row per distinct (deal_id, stage_id,
-- entered_at): a lead's lead_added event (its first status) and each lead_status_changed event
-- (the status it entered, value_after), stage_id `<pipeline id>:<status id>` as in
-- stg_amocrm__stages. Events are not versioned records; those of leads deleted as of the cutoff stay
-- in amoCRM's event log and are dropped here (only deals of stg_amocrm__deals).

with

source as (

    select * from {{ landed('amocrm', 'events') }} as raw_events

),

deals as (

    select * from {{ ref('stg_amocrm__deals') }}

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

stage_events as (

    select * from latest_versions
    where
        not is_deleted
        and doc ->> 'type' in ('lead_added', 'lead_status_changed')

),

renamed as (

    select
        -- ids
        doc ->> 'entity_id' as deal_id,
        (doc -> 'value_after' -> 0 -> 'lead_status' ->> 'pipeline_id')
        || ':'
        || (doc -> 'value_after' -> 0 -> 'lead_status' ->> 'id') as stage_id,

        -- timestamps (UTC; amoCRM gives Unix seconds)
        to_timestamp((doc ->> 'created_at')::bigint) as entered_at

    from stage_events

),

deduplicated as (

    select distinct
        renamed.deal_id,
        renamed.stage_id,
        renamed.entered_at
    from renamed
    inner join deals
        on renamed.deal_id = deals.deal_id
    where renamed.stage_id is not null

),

final as (

    select
        deal_id,
        stage_id,
        entered_at
    from deduplicated

)

select * from final
