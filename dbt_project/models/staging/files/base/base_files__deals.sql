{{
    config(
        indexes=[
            {'columns': ['deal_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']}
        ]
    )
}}

-- Every typed version of every crm `deals` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'deals') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.deal_id,
        source.account_id,
        source.owner_id as owner_user_id,
        source.pipeline_id,
        source.stage_id,

        -- text
        source.deal_name,
        lower(trim(source.status)) as status,
        {{ b2b_currency('source.currency') }} as currency,
        source.lost_reason,
        source.lead_source,

        -- numbers
        {{ b2b_numeric('source.amount') }} as amount,

        -- booleans
        {{ b2b_bool('source.is_deleted') }} as is_deleted,

        -- dates and timestamps (UTC)
        {{ b2b_date('source.expected_close_date') }} as expected_close_date,
        {{ b2b_timestamp('source.created_at') }} as created_at,
        {{ b2b_timestamp('source.closed_at') }} as closed_at,
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
