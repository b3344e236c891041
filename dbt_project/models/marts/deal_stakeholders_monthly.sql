-- Stakeholders per won deal: one row per month of closing with at least one won deal: how many
-- contacts, and how many decision makers, won deals involved. Only the won deals of the pipelines
-- that count (fct_deals.is_sales_pipeline); contacts count through them (joined to those deals only).

with

deals as (

    select * from {{ ref('fct_deals') }}
    where is_sales_pipeline

),

deal_contacts as (

    select * from {{ ref('fct_deal_contacts') }}

),

contacts_per_deal as (

    select
        deal_key,
        count(*) as contacts,
        count(*) filter (where role = 'decision_maker') as decision_makers
    from deal_contacts
    group by deal_key

),

won_deals as (

    select
        deals.close_month as month,
        coalesce(contacts_per_deal.contacts, 0) as contacts,
        coalesce(contacts_per_deal.decision_makers, 0) as decision_makers
    from deals
    left join contacts_per_deal
        on deals.deal_key = contacts_per_deal.deal_key
    where deals.is_won

),

final as (

    select
        month,
        count(*) as deals_won,
        avg(contacts) as avg_contacts_per_won_deal,
        avg(decision_makers) as avg_decision_makers_per_won_deal,
        avg((decision_makers > 0)::integer) as share_with_decision_maker
    from won_deals
    group by month

)

select * from final
