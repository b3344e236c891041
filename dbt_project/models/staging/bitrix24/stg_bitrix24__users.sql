{{
    config(
        indexes=[{'columns': ['user_id']}]
    )
}}

-- The users (sales reps) of the Bitrix24 portal as of the cutoff, one row per user (MAPPING.md,
-- "users"). user.get is read whole every night and has no change time: a version (updated_at NULL)
-- counts whenever it was read, the latest read wins; a user gone from the list has a deletion
-- version dated when that was found, which counts from then on. updated_at: when this version was
-- first read.

with

source as (

    select * from {{ landed('bitrix24', 'users') }} as raw_users

),

versions as (

    select
        *,
        min(_extracted_at) over (partition by record_id, _version) as first_extracted_at
    from source
    where updated_at < {{ cutoff() }} or updated_at is null

),

latest_versions as (

    select distinct on (record_id) *
    from versions
    order by record_id asc, coalesce(updated_at, _extracted_at) desc, _extracted_at desc

),

live_versions as (

    select * from latest_versions
    where not is_deleted

),

user_ids as (

    select * from {{ ref('base_bitrix24__ids') }}
    where entity = 'users'

),

renamed as (

    select
        -- ids
        coalesce(user_ids.canonical_id, live_versions.record_id) as user_id,

        -- text: Bitrix24 splits the name, the canonical model keeps it whole
        nullif(
            concat_ws(
                ' ',
                nullif(trim(live_versions.doc ->> 'NAME'), ''),
                nullif(trim(live_versions.doc ->> 'SECOND_NAME'), ''),
                nullif(trim(live_versions.doc ->> 'LAST_NAME'), '')
            ),
            ''
        ) as full_name,
        nullif(live_versions.doc ->> 'EMAIL', '') as email,
        nullif(live_versions.doc ->> 'WORK_DEPARTMENT', '') as team,

        -- booleans: user.get answers a JSON boolean; "Y"/"N" is read too
        case jsonb_typeof(live_versions.doc -> 'ACTIVE')
            when 'boolean' then (live_versions.doc -> 'ACTIVE')::boolean
            else coalesce(upper(live_versions.doc ->> 'ACTIVE') in ('Y', 'TRUE', '1'), false)
        end as is_active,

        -- timestamps (UTC)
        live_versions.first_extracted_at as updated_at,

        -- lineage: the raw row
        live_versions.record_id as _record_id,
        live_versions._extracted_at,
        live_versions._dlt_load_id

    from live_versions
    left join user_ids
        on live_versions.record_id = user_ids.bitrix_id

),

final as (

    select
        user_id,
        full_name,
        email,
        team,
        is_active,
        updated_at,
        _record_id,
        _extracted_at,
        _dlt_load_id

    from renamed

)

select * from final
