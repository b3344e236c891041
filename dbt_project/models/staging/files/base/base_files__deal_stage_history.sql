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
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger.

with

source as (

    select * from {{ source('files', 'deal_stage_history') }}
    {{ new_files_only() }}

),

file_loads as (

    select * from {{ source('files', 'file_loads') }}

),

renamed as (

    select
        -- ids
        source.deal_id,
        source.stage_id,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.entered_at') }} as entered_at,

        -- load metadata
        source._file_id,
        source._line,
        file_loads.batch_id as _batch_id,
        file_loads.file as _file,
        file_loads.folder_date as _folder_date,
        file_loads.loaded_at as _loaded_at

    from source
    left join file_loads
        on source._file_id = file_loads.file_id

)

select * from renamed
