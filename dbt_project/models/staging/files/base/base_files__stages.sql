{{
    config(
        indexes=[
            {'columns': ['stage_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']}
        ]
    )
}}

-- Every typed version of every crm `stages` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'stages') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.stage_id,
        source.pipeline_id,

        -- text
        source.stage_name,
        lower(trim(source.canonical_stage)) as canonical_stage,

        -- numbers
        {{ b2b_integer('source.display_order') }} as display_order,
        {{ b2b_numeric('source.probability') }} as probability,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.updated_at') }} as updated_at,

        -- load metadata: the raw row's place in the drop; `final` adds the file ledger's columns
        source._file_id,
        source._line

    from source

),

final as (

    {{ with_load_metadata('renamed') }}

)

select * from final
