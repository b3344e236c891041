-- Activities before the cutoff aggregated per deal, one row per deal with at least one activity.

with

activities as (

    select * from {{ ref('int_activities_unioned') }}

),

final as (

    select
        deal_key,
        min(occurred_at) as first_activity_at,
        max(occurred_at) as last_activity_at,
        count(*) as activity_count
    from activities
    where deal_key is not null
    group by deal_key

)

select * from final
