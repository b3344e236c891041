{{ config(indexes=[{'columns': ['deal_id']}]) }}

-- amoCRM leads as deals as of the cutoff, one row per deal_id: the latest version updated before
-- the cutoff (on a tie a deletion wins), and no lead whose latest version is a deletion (a
-- lead_deleted event). The amount is the exact decimal of the custom field "Сумма сделки", else
-- amoCRM's integer price; the currency the custom field "Валюта сделки", else the account's. The
-- status is `won` in the won status (142) or a stage mapped to closing/post_sale, `lost` in the lost
-- status (143) or a stage mapped to lost, else `open`. updated_at also moves when the lead's
-- contact links change.

with

source as (

    select * from {{ landed('amocrm', 'leads') }} as raw_leads

),

account as (

    select * from {{ landed('amocrm', 'account') }} as raw_account

),

custom_fields as (

    select * from {{ ref('base_amocrm__custom_fields') }}

),

stages as (

    select * from {{ ref('stg_amocrm__stages') }}

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

surviving as (

    select * from latest_versions
    where not is_deleted

),

latest_account as (

    select doc
    from account
    order by _extracted_at desc
    limit 1

),

field_ids as (

    select
        min(custom_fields.field_id) filter (where custom_fields.field_name = 'Сумма сделки') as amount,
        min(custom_fields.field_id) filter (where custom_fields.field_name = 'Валюта сделки') as currency,
        min(custom_fields.field_id) filter (
            where custom_fields.field_name = 'Ожидаемая дата закрытия'
        ) as expected_close_date,
        min(custom_fields.field_id) filter (where custom_fields.field_name = 'Источник') as lead_source,
        (select latest_account.doc ->> 'currency' from latest_account) as account_currency
    from custom_fields
    where custom_fields.entity = 'leads'

),

renamed as (

    select
        -- ids
        surviving.record_id::text as deal_id,
        surviving.doc -> '_embedded' -> 'companies' -> 0 ->> 'id' as account_id,
        surviving.doc ->> 'responsible_user_id' as owner_user_id,
        surviving.doc ->> 'pipeline_id' as pipeline_id,
        (surviving.doc ->> 'pipeline_id') || ':' || (surviving.doc ->> 'status_id') as stage_id,
        (surviving.doc ->> 'status_id')::bigint as status_id,

        -- text
        nullif(surviving.doc ->> 'name', '') as deal_name,
        upper(trim(coalesce(field_values.currency, field_ids.account_currency))) as currency,
        surviving.doc -> '_embedded' -> 'loss_reason' -> 0 ->> 'name' as lost_reason,
        field_values.lead_source,

        -- numbers
        coalesce(
            replace(nullif(trim(field_values.amount), ''), ',', '.')::numeric,
            (surviving.doc ->> 'price')::numeric
        ) as amount,

        -- dates and timestamps (UTC; amoCRM gives Unix seconds)
        (to_timestamp(field_values.expected_close_date::bigint) at time zone 'UTC')::date as expected_close_date,
        to_timestamp((surviving.doc ->> 'created_at')::bigint) as created_at,
        to_timestamp((surviving.doc ->> 'closed_at')::bigint) as closed_at,
        surviving.updated_at

    from surviving
    cross join field_ids
    left join lateral (
        select
            {{ amocrm_field_value('field_ids.amount') }} as amount,
            {{ amocrm_field_value('field_ids.currency') }} as currency,
            {{ amocrm_field_value('field_ids.expected_close_date') }} as expected_close_date,
            {{ amocrm_field_value('field_ids.lead_source') }} as lead_source
        from {{ amocrm_custom_field_values('surviving.doc') }} as field
    ) as field_values on true

),

final as (

    select
        renamed.deal_id,
        renamed.account_id,
        renamed.owner_user_id,
        renamed.pipeline_id,
        renamed.stage_id,
        renamed.deal_name,
        case
            when renamed.status_id = 142 or stages.canonical_stage in ('closing', 'post_sale') then 'won'
            when renamed.status_id = 143 or stages.canonical_stage = 'lost' then 'lost'
            else 'open'
        end as status,
        renamed.currency,
        renamed.lost_reason,
        renamed.lead_source,
        renamed.amount,
        renamed.expected_close_date,
        renamed.created_at,
        renamed.closed_at,
        renamed.updated_at
    from renamed
    left join stages
        on renamed.stage_id = stages.stage_id

)

select * from final
