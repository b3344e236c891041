{{
    config(
        indexes=[
            {'columns': ['subscription_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']}
        ]
    )
}}

-- Every typed version of every billing `subscriptions` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'subscriptions') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.subscription_id,
        source.customer_id,

        -- text
        source.plan,
        lower(trim(source.status)) as status,
        {{ b2b_currency('source.currency') }} as currency,

        -- numbers
        {{ b2b_numeric('source.mrr_amount') }} as mrr_amount,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.started_at') }} as started_at,
        {{ b2b_timestamp('source.canceled_at') }} as canceled_at,
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
