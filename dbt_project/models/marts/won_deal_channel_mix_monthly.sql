-- Channel mix of won deals: one row per month of closing and activity channel: how many of the
-- month's won deals had at least one activity on the channel up to their close, and how many such
-- activities there were. Only the won deals of the pipelines that count (fct_deals.is_sales_pipeline);
-- activities count through them (an inner join), so an activity of another pipeline's deal does not.

with

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

activities as (

    select * from {{ ref('fct_activities') }}

),

won_deals as (

    select
        deal_key,
        close_month,
        closed_at
    from deals
    where is_won

),

won_deals_per_month as (

    select
        close_month,
        count(*) as deals_won
    from won_deals
    group by close_month

),

-- One row per won deal and channel it was touched on up to its close, with the number of such
-- activities. Counting these rows per month and channel gives the distinct deals touched without
-- sorting every activity (a count(distinct) would).
deal_channel_touches as (

    select
        won_deals.close_month,
        won_deals.deal_key,
        activities.channel,
        count(*) as activities
    from won_deals
    inner join activities
        on won_deals.deal_key = activities.deal_key
    where activities.occurred_at <= won_deals.closed_at
    group by won_deals.close_month, won_deals.deal_key, activities.channel

),

final as (

    select
        deal_channel_touches.close_month as month,
        deal_channel_touches.channel,
        count(*) as won_deals_touched,
        sum(deal_channel_touches.activities)::bigint as activities,
        count(*)::numeric / won_deals_per_month.deals_won as share_of_won_deals
    from deal_channel_touches
    inner join won_deals_per_month
        on deal_channel_touches.close_month = won_deals_per_month.close_month
    group by deal_channel_touches.close_month, deal_channel_touches.channel, won_deals_per_month.deals_won

)

select * from final
