{{
    config(
        indexes=[
            {'columns': ['rate_date', 'currency']},
            {'columns': ['_file_id']}
        ]
    )
}}

-- Every typed version of every billing `fx_rates` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'fx_rates') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- text
        {{ b2b_currency('source.currency') }} as currency,

        -- numbers
        {{ b2b_numeric('source.rate') }} as rate,

        -- dates and timestamps (UTC)
        {{ b2b_date('source.rate_date') }} as rate_date,

        -- load metadata: the raw row's place in the drop; `final` adds the file ledger's columns
        source._file_id,
        source._line

    from source

),

final as (

    {{ with_load_metadata('renamed') }}

)

select * from final
