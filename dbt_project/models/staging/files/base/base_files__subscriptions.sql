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
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger.

with

source as (

    select * from {{ source('files', 'subscriptions') }}
    {{ new_files_only() }}

),

file_loads as (

    select * from {{ source('files', 'file_loads') }}

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
