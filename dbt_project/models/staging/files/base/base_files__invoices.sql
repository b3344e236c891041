{{
    config(
        indexes=[
            {'columns': ['invoice_id']},
            {'columns': ['_file_id']},
            {'columns': ['updated_at']},
            {'columns': ['issued_at']},
            {'columns': ['paid_at']}
        ]
    )
}}

-- Every typed version of every billing `invoices` record of the file drop, appended file by file:
-- an incremental run types only the rows of files loaded since the last run (the raw layer is
-- append-only and _file_id increases in load order). Load metadata comes from the file ledger
-- (macros/load_metadata.sql).

with

source as (

    select * from {{ source('files', 'invoices') }}
    {{ new_files_only() }}

),

renamed as (

    select
        -- ids
        source.invoice_id,
        source.customer_id,
        source.subscription_id,
        source.deal_id,

        -- text
        lower(trim(source.status)) as status,
        {{ b2b_currency('source.currency') }} as currency,

        -- numbers
        {{ b2b_numeric('source.amount_total') }} as amount_total,
        {{ b2b_numeric('source.amount_paid') }} as amount_paid,

        -- dates and timestamps (UTC)
        {{ b2b_timestamp('source.issued_at') }} as issued_at,
        {{ b2b_timestamp('source.due_at') }} as due_at,
        {{ b2b_timestamp('source.paid_at') }} as paid_at,
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
