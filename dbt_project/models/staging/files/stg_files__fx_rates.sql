{{
    config(
        indexes=[{'columns': ['rate_date', 'currency']}],
        pre_hook="{{ latest_versions_forget_changed(ref('base_files__fx_rates'), ['rate_date', 'currency'], has_updated_at=false) }}",
        post_hook="{{ latest_versions_remember(ref('base_files__fx_rates')) }}"
    )
}}

-- Daily currency rates: one row per (rate_date, currency); a later file's rate replaces an
-- earlier one (files in crm/ or billing/ first, then dated folders in date order).
-- Incremental: a run recomputes only the keys that can have changed since the last one
-- (macros/latest_versions.sql).

with

versions as (

    select * from {{ ref('base_files__fx_rates') }}
    where {{ latest_versions_only_changed(ref('base_files__fx_rates'), ['rate_date', 'currency'], has_updated_at=false) }}

),

latest_versions as (

    select distinct on (rate_date, currency) *
    from versions
    order by rate_date, currency, {{ latest_version_first(has_updated_at=false) }}

),

final as (

    select
        rate_date,
        currency,
        rate,
        _file,
        _line

    from latest_versions

)

select * from final
