{{ config(indexes=[{'columns': ['entity', 'field_id'], 'unique': True}]) }}

-- The latest definition of every amoCRM custom field the connector landed, one row per entity
-- (leads, companies, contacts) and field id: the staging models find the fields they read by name
-- or code here (their ids differ per account), whatever the cutoff (a definition has no history
-- the marts depend on).

with

source as (

    select * from {{ landed('amocrm', 'custom_fields') }} as raw_custom_fields

),

latest_definitions as (

    select distinct on (source.record_id)
        source.record_id,
        source.doc
    from source
    order by source.record_id asc, source._extracted_at desc

),

final as (

    select
        split_part(record_id, ':', 1) as entity,
        (doc ->> 'id')::bigint as field_id,
        doc ->> 'name' as field_name,
        doc ->> 'code' as field_code
    from latest_definitions

)

select * from final
