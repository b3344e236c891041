{{
    config(
        indexes=[{'columns': ['stage_id']}]
    )
}}

-- The deal stages of the Bitrix24 portal, one row per stage of every funnel (MAPPING.md,
-- "stages"): crm.status.list (DEAL_STAGE, DEAL_STAGE_<n>) with the funnel of each from
-- crm.category.list. Both are read whole every night and have no change time: a version
-- (updated_at NULL) counts whenever it was read, the latest read wins.
-- - stage_id: the STATUS_ID without its `C<n>:` funnel prefix, unless that name is in several
--   funnels (base_bitrix24__ids); pipeline_id: the funnel's name.
-- - display_order: the stage's rank by SORT in its funnel.
-- - canonical_stage and probability (crm.status has neither): the user-edited seed
--   bitrix24_stage_mapping, the most specific row first (the funnel's own row before a `*` row; a
--   row naming the STATUS_ID, then the STATUS_ID without prefix, then the stage name); a stage the
--   seed does not name: its semantics, success -> closing (1), failure -> lost (0), in process ->
--   NULL (unmapped: the quality gate blocks a deal in an unmapped stage).
-- - updated_at: when this version of the stage was first read.

with

source as (

    select * from {{ landed('bitrix24', 'deal_stages') }} as deal_stages

),

versions as (

    select
        *,
        min(_extracted_at) over (partition by record_id, _version) as first_extracted_at
    from source
    where updated_at < {{ cutoff() }} or updated_at is null

),

latest_versions as (

    select distinct on (record_id) *
    from versions
    order by record_id asc, coalesce(updated_at, _extracted_at) desc, _extracted_at desc

),

live_versions as (

    select
        *,
        coalesce(
            nullif(doc ->> 'CATEGORY_ID', ''),
            substring(doc ->> 'ENTITY_ID' from '^DEAL_STAGE_([0-9]+)$'),
            '0'
        ) as category_id
    from latest_versions
    where not is_deleted

),

category_ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity = 'deal_categories'

),

stage_ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity = 'deal_stages'

),

stage_mapping as (

    select * from {{ ref('bitrix24_stage_mapping') }}

),

renamed as (

    select
        -- ids
        coalesce(stage_ids.canonical_id, regexp_replace(live_versions.record_id, '^C[0-9]+:', '')) as stage_id,
        coalesce(category_ids.canonical_id, live_versions.category_id) as pipeline_id,

        -- text
        live_versions.doc ->> 'NAME' as stage_name,

        -- numbers
        row_number() over (
            partition by live_versions.category_id
            order by
                case
                    when live_versions.doc ->> 'SORT' ~ '^\s*-?[0-9]+(\.[0-9]+)?\s*$'
                        then (live_versions.doc ->> 'SORT')::numeric
                end nulls last,
                live_versions.record_id
        )::integer as display_order,

        -- what the seed is matched on, and the stage's semantics
        live_versions.record_id as status_id,
        regexp_replace(live_versions.record_id, '^C[0-9]+:', '') as status_code,
        live_versions.category_id,
        case
            when
                live_versions.doc ->> 'SEMANTICS' = 'S'
                or live_versions.doc -> 'EXTRA' ->> 'SEMANTICS' = 'success'
                then 'closing'
            when
                live_versions.doc ->> 'SEMANTICS' = 'F'
                or live_versions.doc -> 'EXTRA' ->> 'SEMANTICS' in ('failure', 'apology')
                then 'lost'
        end as semantic_stage,

        -- timestamps (UTC)
        live_versions.first_extracted_at as updated_at,

        -- lineage: the raw row
        live_versions.record_id as _record_id,
        live_versions._extracted_at,
        live_versions._dlt_load_id

    from live_versions
    left join category_ids
        on live_versions.category_id = category_ids.bitrix_id
    left join stage_ids
        on live_versions.record_id = stage_ids.bitrix_id

),

mapped as (

    select distinct on (renamed.status_id)
        renamed.*,
        stage_mapping.canonical_stage as mapped_stage,
        stage_mapping.probability as mapped_probability
    from renamed
    left join stage_mapping
        on
            stage_mapping.category in (renamed.pipeline_id, renamed.category_id, '*')
            and stage_mapping.stage in (renamed.status_id, renamed.status_code, renamed.stage_name)
    order by
        renamed.status_id,
        stage_mapping.category = '*',
        case stage_mapping.stage
            when renamed.status_id then 1
            when renamed.status_code then 2
            else 3
        end

),

final as (

    select
        stage_id,
        pipeline_id,
        stage_name,
        coalesce(lower(trim(mapped_stage)), semantic_stage) as canonical_stage,
        display_order,
        coalesce(
            mapped_probability,
            case semantic_stage when 'closing' then 1 when 'lost' then 0 end
        )::numeric as probability,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from mapped

)

select * from final
