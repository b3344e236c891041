{{ config(indexes=[{'columns': ['stage_id']}]) }}

-- HubSpot deal pipeline stages as of the cutoff, one row per stage_id (HubSpot's stage id, unique
-- across pipelines: the deal's dealstage): the stages of the latest version of each pipeline updated
-- before the cutoff. The probability is HubSpot's own (metadata.probability), else the seed's; the
-- canonical stage comes from the seed hubspot_stage_mapping by (pipeline id or label, stage id or
-- label), a pipeline's own row before a `*` row and a stage id before a label, else from HubSpot's
-- metadata: a closed stage of probability 1 -> closing, of probability 0 -> lost. Any other stage
-- has a NULL canonical_stage, which the quality gate reports.

with

source as (

    select * from {{ landed('hubspot', 'pipelines') }} as raw_pipelines

),

stage_mapping as (

    select * from {{ ref('hubspot_stage_mapping') }}

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

stages as (

    select
        latest_versions.record_id::text as pipeline_id,
        latest_versions.doc ->> 'label' as pipeline_label,
        pipeline_stage.value ->> 'id' as stage_id,
        pipeline_stage.value ->> 'label' as stage_label,
        (pipeline_stage.value ->> 'displayOrder')::integer as stage_order,
        nullif(pipeline_stage.value -> 'metadata' ->> 'probability', '')::numeric as hubspot_probability,
        coalesce((pipeline_stage.value -> 'metadata' ->> 'isClosed')::boolean, false) as is_closed,
        coalesce((pipeline_stage.value ->> 'updatedAt')::timestamptz, latest_versions.updated_at) as updated_at
    from latest_versions
    cross join
        lateral jsonb_array_elements(
            case
                when jsonb_typeof(latest_versions.doc -> 'stages') = 'array' then latest_versions.doc -> 'stages'
                else '[]'::jsonb
            end
        ) as pipeline_stage
    where
        not latest_versions.is_deleted
        and not coalesce((pipeline_stage.value ->> 'archived')::boolean, false)

),

mapped as (

    select
        stages.*,
        seed_row.canonical_stage as mapped_stage,
        seed_row.probability as mapped_probability
    from stages
    left join lateral (
        select
            stage_mapping.canonical_stage,
            stage_mapping.probability
        from stage_mapping
        where
            stage_mapping.hubspot_pipeline in (stages.pipeline_id, stages.pipeline_label, '*')
            and stage_mapping.hubspot_stage in (stages.stage_id, stages.stage_label)
        order by (stage_mapping.hubspot_pipeline = '*') asc, (stage_mapping.hubspot_stage = stages.stage_id) desc
        limit 1
    ) as seed_row on true

),

renamed as (

    select
        -- ids
        stage_id,
        pipeline_id,

        -- text
        stage_label as stage_name,
        lower(trim(coalesce(
            mapped_stage,
            case
                when is_closed and hubspot_probability = 1 then 'closing'
                when is_closed and hubspot_probability = 0 then 'lost'
            end
        ))) as canonical_stage,

        -- numbers: HubSpot's displayOrder, ranked within the pipeline (ties by label, as HubSpot sorts)
        (row_number() over (
            partition by pipeline_id
            order by stage_order asc, stage_label asc
        ))::integer as display_order,
        coalesce(hubspot_probability, mapped_probability) as probability,

        -- timestamps (UTC): the stage's updatedAt
        updated_at

    from mapped

),

final as (

    select
        stage_id,
        pipeline_id,
        stage_name,
        canonical_stage,
        display_order,
        probability,
        updated_at
    from renamed

)

select * from final
