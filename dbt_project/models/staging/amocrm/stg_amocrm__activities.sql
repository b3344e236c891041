{{ config(indexes=[{'columns': ['activity_id']}]) }}

-- amoCRM completed tasks as activities as of the cutoff, one row per activity_id: the latest version
-- updated before the cutoff (on a tie a deletion wins), no task whose latest version is a deletion (a
-- task_deleted event), and no task not completed (a planned task has not happened). A task links one
-- entity: the deal, else the contact, else the account; the account of a task on a deal or contact is
-- that deal's or contact's (as of its last version before the cutoff, also when it was deleted since). The channel is the task type: 1 call, 2 meeting, the account's other task
-- types by name.

with

source as (

    select * from {{ landed('amocrm', 'tasks') }} as raw_tasks

),

account as (

    select * from {{ landed('amocrm', 'account') }} as raw_account

),

leads as (

    select * from {{ landed('amocrm', 'leads') }} as raw_leads

),

contacts as (

    select * from {{ landed('amocrm', 'contacts') }} as raw_contacts

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where
        not is_deleted
        and coalesce((doc ->> 'is_completed')::boolean, true)

),

-- the company of each lead and contact: of its last version before the cutoff that is a record
-- (not a deletion), so that a task on a deleted lead or contact keeps its account
lead_companies as (

    select distinct on (record_id)
        record_id::text as deal_id,
        doc -> '_embedded' -> 'companies' -> 0 ->> 'id' as account_id
    from leads
    where updated_at < {{ cutoff() }} and not is_deleted
    order by record_id asc, updated_at desc, _extracted_at desc

),

contact_companies as (

    select distinct on (record_id)
        record_id::text as contact_id,
        doc -> '_embedded' -> 'companies' -> 0 ->> 'id' as account_id
    from contacts
    where updated_at < {{ cutoff() }} and not is_deleted
    order by record_id asc, updated_at desc, _extracted_at desc

),

latest_account as (

    select doc
    from account
    order by _extracted_at desc
    limit 1

),

task_types as (

    select
        (task_type.value ->> 'id')::bigint as task_type_id,
        case task_type.value ->> 'name'
            when 'Письмо' then 'email'
            when 'Вебинар' then 'webinar'
            when 'Соцсети' then 'social'
            when 'Мероприятие' then 'event'
            else 'other'
        end as channel
    from latest_account
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(latest_account.doc -> '_embedded' -> 'task_types') = 'array'
                then latest_account.doc -> '_embedded' -> 'task_types'
            else '[]'::jsonb
        end
    ) as task_type

),

renamed as (

    select
        -- ids
        surviving.record_id::text as activity_id,
        case when surviving.doc ->> 'entity_type' = 'leads' then surviving.doc ->> 'entity_id' end as deal_id,
        case
            when surviving.doc ->> 'entity_type' = 'contacts' then surviving.doc ->> 'entity_id'
        end as contact_id,
        case
            when surviving.doc ->> 'entity_type' = 'companies' then surviving.doc ->> 'entity_id'
        end as linked_account_id,
        surviving.doc ->> 'responsible_user_id' as owner_user_id,

        -- text
        case (surviving.doc ->> 'task_type_id')::bigint
            when 1 then 'call'
            when 2 then 'meeting'
            else coalesce(task_types.channel, 'other')
        end as channel,

        -- timestamps (UTC; amoCRM gives Unix seconds)
        to_timestamp((surviving.doc ->> 'complete_till')::bigint) as occurred_at,
        surviving.updated_at

    from surviving
    left join task_types
        on (surviving.doc ->> 'task_type_id')::bigint = task_types.task_type_id

),

final as (

    select
        renamed.activity_id,
        renamed.deal_id,
        coalesce(renamed.linked_account_id, lead_companies.account_id, contact_companies.account_id) as account_id,
        renamed.contact_id,
        renamed.owner_user_id,
        renamed.channel,
        renamed.occurred_at,
        renamed.updated_at
    from renamed
    left join lead_companies
        on renamed.deal_id = lead_companies.deal_id
    left join contact_companies
        on renamed.contact_id = contact_companies.contact_id

)

select * from final
