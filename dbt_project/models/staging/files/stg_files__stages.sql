-- The `stages` of the file drop as of the cutoff: the latest version of each id among those
-- updated before the cutoff.

with

versions as (

    select * from {{ ref('base_files__stages') }}
    where updated_at < {{ cutoff() }}

),

latest_versions as (

    select distinct on (stage_id) *
    from versions
    order by stage_id, {{ latest_version_first() }}

),

final as (

    select
        stage_id,
        pipeline_id,
        stage_name,
        canonical_stage,
        display_order,
        probability,
        updated_at,
        _file,
        _line

    from latest_versions

)

select * from final
