{{
    config(
        indexes=[
            {'columns': ['deal_id']},
            {'columns': ['_file_id']},
            {'columns': ['entered_at']}
        ]
    )
}}

-- Every typed version of every crm `deal_stage_history` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'deal_stage_history') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.deal_id,
        source.stage_id,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.entered_at') }} as entered_at,

        -- load metadata: the raw row's place in the drop; `final` adds the file ledger's columns
        source._file_id,
        source._line

    from source

),

final as (

    {{ with_load_metadata('renamed') }}

)

select * from final
