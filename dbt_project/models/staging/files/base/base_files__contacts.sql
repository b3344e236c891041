{{
    config(
        indexes=[
            {'columns': ['contact_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']}
        ]
    )
}}

-- Every typed version of every crm `contacts` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'contacts') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.contact_id,
        source.account_id,

        -- text
        source.full_name,
        source.email,
        source.phone,
        source.job_title,

        -- booleans
        {{ b2b_bool('source.is_deleted') }} as is_deleted,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.created_at') }} as created_at,
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
