-- CRM users (sales reps) of every CRM source system, one row per user.
-- A new CRM source system plugs in as one more import CTE and one more `union all` branch.

with

files_users as (

    select * from {{ ref('stg_files__users') }}

),

unioned as (

    select
        'files' as source_system,
        user_id,
        full_name,
        email,
        team,
        is_active,
        updated_at
    from files_users

),

final as (

    select
        {{ b2b_key('source_system', 'user_id') }} as sales_rep_key,
        unioned.*
    from unioned

)

select * from final
