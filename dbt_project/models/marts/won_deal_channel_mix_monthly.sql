-- Channel mix of won deals: one row per month of closing and activity channel: how many of the
-- month's won deals had at least one activity on the channel up to their close, and how many such
-- activities there were.

with

deals as (

    select * from {{ ref('fct_deals') }}

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

touches as (

    select
        won_deals.close_month,
        won_deals.deal_key,
        activities.channel
    from won_deals
    inner join activities
        on won_deals.deal_key = activities.deal_key
    where activities.occurred_at <= won_deals.closed_at

),

final as (

    select
        touches.close_month as month,
        touches.channel,
        count(distinct touches.deal_key) as won_deals_touched,
        count(*) as activities,
        count(distinct touches.deal_key)::numeric / won_deals_per_month.deals_won as share_of_won_deals
    from touches
    inner join won_deals_per_month
        on touches.close_month = won_deals_per_month.close_month
    group by touches.close_month, touches.channel, won_deals_per_month.deals_won

)

select * from final
