{{ config(indexes=[{'columns': ['stage_id']}]) }}

-- amoCRM pipeline statuses as stages, one row per stage_id `<pipeline id>:<status id>` (the won
-- status 142 and the lost status 143 exist in every pipeline under the same id). Pipelines are read
-- whole every night: the latest version is the last one extracted (not cut off, as for users).
-- amoCRM does not carry the canonical stage nor the probability: they come from the seed
-- amocrm_stage_mapping by (pipeline name, status name), a pipeline-specific row first, then
-- 142 -> closing (probability 1) and 143 -> lost (0), then a row for any pipeline ('*'). An unmapped status has a NULL
-- canonical_stage, which the quality gate reports.

with

source as (

    select * from {{ landed('amocrm', 'pipelines') }} as raw_pipelines

),

stage_mapping as (

    select * from {{ ref('amocrm_stage_mapping') }}

),

latest_versions as (

    select distinct on (record_id) *
    from source
    order by record_id asc, _extracted_at desc

),

statuses as (

    select
        latest_versions.record_id::text as pipeline_id,
        latest_versions.doc ->> 'name' as pipeline_name,
        (status.value ->> 'id')::bigint as status_id,
        status.value ->> 'name' as status_name,
        (status.value ->> 'sort')::bigint as status_sort,
        latest_versions._extracted_at
    from latest_versions
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(latest_versions.doc -> '_embedded' -> 'statuses') = 'array'
                then latest_versions.doc -> '_embedded' -> 'statuses'
            else '[]'::jsonb
        end
    ) as status

),

renamed as (

    select
        -- ids
        statuses.pipeline_id || ':' || statuses.status_id as stage_id,
        statuses.pipeline_id,

        -- text
        statuses.status_name as stage_name,
        lower(trim(coalesce(
            in_pipeline.canonical_stage,
            case statuses.status_id when 142 then 'closing' when 143 then 'lost' end,
            any_pipeline.canonical_stage
        ))) as canonical_stage,

        -- numbers: amoCRM's sort, ranked within the pipeline
        (row_number() over (
            partition by statuses.pipeline_id
            order by statuses.status_sort asc, statuses.status_id asc
        ))::integer as display_order,
        coalesce(
            in_pipeline.probability,
            case statuses.status_id when 142 then 1 when 143 then 0 end,
            any_pipeline.probability
        ) as probability,

        -- timestamps (UTC): amoCRM pipelines have none, the version's extraction stands in
        statuses._extracted_at as updated_at

    from statuses
    left join stage_mapping as in_pipeline
        on
            statuses.pipeline_name = in_pipeline.pipeline_name
            and statuses.status_name = in_pipeline.status_name
    left join stage_mapping as any_pipeline
        on
            any_pipeline.pipeline_name = '*'
            and statuses.status_name = any_pipeline.status_name

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
