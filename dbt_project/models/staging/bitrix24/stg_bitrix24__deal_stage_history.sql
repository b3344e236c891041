{{
    config(
        indexes=[{'columns': ['deal_id', 'stage_id', 'entered_at']}]
    )
}}

-- The stage entries of the Bitrix24 portal's deals as of the cutoff (MAPPING.md,
-- "deal_stage_history"): crm.stagehistory.list items are events, not versions, one per record_id
-- (the history ID), entered before the cutoff. Bitrix24 drops the history of a deleted deal, the
-- raw layer keeps what it landed before: only the entries of the deals current as of the cutoff
-- (stg_bitrix24__deals). Two items of the same (deal, stage, time) are one event, as in the file
-- drop.

with

source as (

    select * from {{ landed('bitrix24', 'stage_history') }} as stage_history

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

live_versions as (

    select * from latest_versions
    where not is_deleted

),

deals as (

    select * from {{ ref('stg_bitrix24__deals') }}

),

stage_ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity = 'deal_stages'

),

renamed as (

    select
        -- ids
        deals.deal_id,
        coalesce(stage_ids.canonical_id, regexp_replace(live_versions.doc ->> 'STAGE_ID', '^C[0-9]+:', ''))
            as stage_id,

        -- timestamps (UTC)
        (live_versions.doc ->> 'CREATED_TIME')::timestamptz as entered_at,

        -- lineage: the raw row
        live_versions.record_id as _record_id,
        live_versions._extracted_at,
        live_versions._dlt_load_id

    from live_versions
    inner join deals
        on live_versions.doc ->> 'OWNER_ID' = deals._record_id
    left join stage_ids
        on live_versions.doc ->> 'STAGE_ID' = stage_ids.bitrix_id

),

deduplicated as (

    select distinct on (deal_id, stage_id, entered_at) *
    from renamed
    order by deal_id, stage_id, entered_at, length(_record_id), _record_id

),

final as (

    select
        deal_id,
        stage_id,
        entered_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from deduplicated

)

select * from final
