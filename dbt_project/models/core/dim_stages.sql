{{
    config(
        indexes=[
            {'columns': ['stage_key'], 'unique': True}
        ]
    )
}}

-- Source pipeline stages: one row per CRM stage, with the canonical stage it maps to, that stage's
-- order in the cycle (NULL for `lost`) and the stage's win probability; is_sales_pipeline: whether its
-- pipeline counts in the sales marts (var sales_pipelines; docs/metrics.md, "Pipelines that count").

with

stages as (

    select * from {{ ref('int_stages_unioned') }}

),

canonical_stages as (

    select * from {{ ref('canonical_stages') }}

),

final as (

    select
        stages.stage_key,
        stages.source_system,
        stages.stage_id,
        stages.pipeline_id,
        {{ is_sales_pipeline('stages.pipeline_id') }} as is_sales_pipeline,
        stages.stage_name,
        stages.display_order,
        stages.probability,
        stages.canonical_stage as canonical_stage_key,
        canonical_stages.stage_order as canonical_stage_order,
        canonical_stages.stage_name as canonical_stage_name,
        stages.canonical_stage = 'lost' as is_lost_stage,
        stages.updated_at
    from stages
    left join canonical_stages
        on stages.canonical_stage = canonical_stages.stage_key

)

select * from final
