{{
    config(
        indexes=[
            {'columns': ['sales_rep_key'], 'unique': True}
        ]
    )
}}

-- Sales reps (CRM users): one row per user. The e-mail is kept only as a hash and a domain.

with

sales_reps as (

    select * from {{ ref('int_sales_reps_unioned') }}

),

final as (

    select
        sales_rep_key,
        source_system,
        user_id,
        full_name,
        case
            when nullif(trim(email), '') is not null then {{ dbt.hash("lower(trim(email))") }}
        end as email_hash,
        nullif(lower(split_part(trim(email), '@', 2)), '') as email_domain,
        team,
        is_active,
        updated_at
    from sales_reps

)

select * from final
