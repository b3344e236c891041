{{ config(indexes=[{'columns': ['user_id']}]) }}

-- HubSpot owners (sales reps) as of the cutoff, one row per user_id (the owner id records carry in
-- hubspot_owner_id): the latest version updated before the cutoff. Owners are read whole every night,
-- the active ones and the archived (deactivated) ones: an archived owner is an inactive rep. The full
-- name is firstName and lastName; the team the owner's primary team.

with

source as (

    select * from {{ landed('hubspot', 'owners') }} as raw_owners

),

latest_versions as (

    {{ latest_landed_versions('source') }}

),

renamed as (

    select
        -- ids
        latest_versions.record_id::text as user_id,

        -- text
        nullif(
            concat_ws(
                ' ', nullif(latest_versions.doc ->> 'firstName', ''), nullif(latest_versions.doc ->> 'lastName', '')
            ),
            ''
        ) as full_name,
        nullif(latest_versions.doc ->> 'email', '') as email,
        (
            select team.value ->> 'name'
            from
                jsonb_array_elements(
                    case
                        when jsonb_typeof(latest_versions.doc -> 'teams') = 'array' then latest_versions.doc -> 'teams'
                        else '[]'::jsonb
                    end
                ) with ordinality as team (value, ordinality)
            order by coalesce((team.value ->> 'primary')::boolean, false) desc, team.ordinality asc
            limit 1
        ) as team,

        -- booleans
        not coalesce((latest_versions.doc ->> 'archived')::boolean, false) as is_active,

        -- timestamps (UTC): the owner's updatedAt
        latest_versions.updated_at

    from latest_versions
    where not latest_versions.is_deleted

),

final as (

    select
        user_id,
        full_name,
        email,
        team,
        is_active,
        updated_at
    from renamed

)

select * from final
