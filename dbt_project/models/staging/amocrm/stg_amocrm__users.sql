{{ config(indexes=[{'columns': ['user_id']}]) }}

-- amoCRM users (sales reps), one row per user_id. Users are read whole every night and carry no
-- timestamps: the latest version is the last one extracted (not cut off: amoCRM keeps no history of
-- them, and a night's extraction runs after its cutoff); a user no longer answered keeps its last
-- version. The team is the name of the user's group in the account's users_groups.

with

source as (

    select * from {{ landed('amocrm', 'users') }} as raw_users

),

account as (

    select * from {{ landed('amocrm', 'account') }} as raw_account

),

latest_versions as (

    select distinct on (record_id) *
    from source
    order by record_id asc, _extracted_at desc

),

latest_account as (

    select doc
    from account
    order by _extracted_at desc
    limit 1

),

user_groups as (

    select
        (user_group.value ->> 'id')::bigint as group_id,
        user_group.value ->> 'name' as group_name
    from latest_account
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(latest_account.doc -> '_embedded' -> 'users_groups') = 'array'
                then latest_account.doc -> '_embedded' -> 'users_groups'
            else '[]'::jsonb
        end
    ) as user_group

),

renamed as (

    select
        -- ids
        latest_versions.record_id::text as user_id,

        -- text
        latest_versions.doc ->> 'name' as full_name,
        latest_versions.doc ->> 'email' as email,
        user_groups.group_name as team,

        -- booleans
        coalesce((latest_versions.doc -> 'rights' ->> 'is_active')::boolean, false) as is_active,

        -- timestamps (UTC): amoCRM users have none, the version's extraction stands in
        latest_versions._extracted_at as updated_at

    from latest_versions
    left join user_groups
        on (latest_versions.doc -> 'rights' ->> 'group_id')::bigint = user_groups.group_id

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
