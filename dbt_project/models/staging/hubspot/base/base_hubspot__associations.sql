{{ config(indexes=[{'columns': ['from_type', 'from_id', 'to_type']}]) }}

-- HubSpot associations as of the cutoff, one row per (from_type, from_id, to_type, to_id): the entries
-- (`to[]`) of the latest version before the cutoff of each v4 batch-read result the connector landed
-- (record_id `<from type>:<from id>:<to type>`, updated_at the from record's last change). A result
-- with no entries (`to: []`) means the record had no such associations then. `is_primary`: HubSpot's
-- primary association (label "Primary", e.g. deal -> company 341); `labels`: the USER_DEFINED labels.

with

source as (

    select * from {{ landed('hubspot', 'associations') }} as raw_associations

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

entries as (

    select
        split_part(latest_versions.record_id, ':', 1) as from_type,
        split_part(latest_versions.record_id, ':', 2) as from_id,
        split_part(latest_versions.record_id, ':', 3) as to_type,
        entry.value ->> 'toObjectId' as to_id,
        entry.value -> 'associationTypes' as association_types,
        entry.ordinality as entry_order,
        latest_versions.updated_at
    from latest_versions
    cross join
        lateral jsonb_array_elements(
            case
                when jsonb_typeof(latest_versions.doc -> 'to') = 'array' then latest_versions.doc -> 'to'
                else '[]'::jsonb
            end
        ) with ordinality as entry (value, ordinality)
    where not latest_versions.is_deleted

),

final as (

    select
        entries.from_type,
        entries.from_id,
        entries.to_type,
        entries.to_id,
        coalesce(
            (
                select bool_or(association_type.value ->> 'label' = 'Primary')
                from jsonb_array_elements(entries.association_types) as association_type
            ),
            false
        ) as is_primary,
        (
            select array_agg(association_type.value ->> 'label' order by association_type.value ->> 'label')
            from jsonb_array_elements(entries.association_types) as association_type
            where
                association_type.value ->> 'category' = 'USER_DEFINED'
                and association_type.value ->> 'label' is not null
        ) as labels,
        entries.entry_order,
        entries.updated_at
    from entries

)

select * from final
