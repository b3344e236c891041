{{
    config(
        indexes=[
            {'columns': ['activity_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']},
            {'columns': ['occurred_at']}
        ]
    )
}}

-- Every typed version of every crm `activities` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'activities') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.activity_id,
        source.deal_id,
        source.account_id,
        source.contact_id,
        source.owner_id as owner_user_id,

        -- text
        lower(trim(source.channel)) as channel,

        -- booleans
        {{ b2b_bool('source.is_deleted') }} as is_deleted,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.occurred_at') }} as occurred_at,
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
