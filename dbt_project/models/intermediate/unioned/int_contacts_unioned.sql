-- CRM contacts of every CRM source system as of the cutoff, one row per contact.

with

files_contacts as (

    select * from {{ ref('stg_files__contacts') }}

),

unioned as (

    select
        'files' as source_system,
        contact_id,
        account_id,
        full_name,
        email,
        phone,
        job_title,
        created_at,
        updated_at
    from files_contacts

),

final as (

    select
        {{ b2b_key('source_system', 'contact_id') }} as contact_key,
        {{ b2b_key('source_system', 'account_id', kind='crm') }} as crm_account_key,
        unioned.*
    from unioned
    where created_at < {{ cutoff() }}

)

select * from final
