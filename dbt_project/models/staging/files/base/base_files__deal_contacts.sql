{{
    config(
        indexes=[
            {'columns': ['deal_id', 'contact_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']}
        ]
    )
}}

-- Every typed version of every crm `deal_contacts` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'deal_contacts') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.deal_id,
        source.contact_id,

        -- text
        lower(trim(source.role)) as role,

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
