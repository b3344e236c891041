{#
    Incremental core tables (docs/raw-layer.md, "Incremental core tables"): fct_activities,
    fct_deal_stage_history and dim_contacts.

    Such a table lives in the candidate schema, which a night no longer builds from nothing:
    `prepare_candidates` carries the table over from the last candidate (the one published the
    night before last, or a candidate a blocked night left), and the model patches it since the
    state it recorded there. Every row is a function of a few source records and of whether the
    records it names exist as of the cutoff, so a night recomputes the keys whose rows depend on:

      - a record of the table's own entity with a version typed since the table's watermark, or
        whose updated_at or event time lies between its last cutoff and tonight's (the staging
        rule, macros/latest_versions.sql);
      - a record of another entity whose existence (or, for a deal's stage entries, whose close)
        can have changed by the same rule (a version typed since the watermark, or its updated_at,
        created_at or closed_at between the two cutoffs).

    The pre-hook lists the keys to recompute in a temporary table and deletes their rows; the model
    then inserts the rows of those keys that exist tonight. fct_deal_stage_history also moves the
    entries without an exit on to tonight's cutoff (a post-hook).

    The state (watermark, as-of date, checksum, whether the table has rows) is recorded in the
    table comment, as for the staging models, with two differences:
      - the checksum covers the SQL of the model and of every model and seed it descends from, so
        that a change of any upstream rule (when a deal exists, say) rebuilds the table in full;
      - the watermark is the highest watermark of the staging models it reads, which must all have
        been built for tonight's as-of date; otherwise no state is recorded and the next run
        rebuilds the table in full.
#}

{# An md5 of the SQL checksums of the model and of every model and seed it descends from, and of the project's macros (sql_checksum). #}
{% macro core_patch_checksum() -%}
    {%- set seen = [] -%}
    {%- set queue = [model.unique_id] -%}
    {%- for unique_id in queue -%}
        {%- if unique_id not in seen and unique_id in graph.nodes -%}
            {%- do seen.append(unique_id) -%}
            {%- do queue.extend(graph.nodes[unique_id].depends_on.nodes) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set checksums = [] -%}
    {%- for unique_id in seen | sort -%}
        {%- do checksums.append(unique_id ~ '=' ~ graph.nodes[unique_id].checksum.checksum) -%}
    {%- endfor -%}
    {%- do checksums.append('macros=' ~ var('macros_checksum', '') ~ ',' ~ night_settings_key()) -%}
    {{- return(local_md5(checksums | join(','))) -}}
{%- endmacro %}

{#
    The state the fact recorded on its last run, or none when it must be rebuilt in full: first
    run, --full-refresh, a checksum of another lineage, a table whose rows do not match the state,
    a staging model in `upstreams` not built for tonight's as-of date, or an API source tonight
    (files_only).
#}
{% macro core_patch_state(upstreams) -%}
    {%- if not execute or not is_incremental() or not files_only() -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set recorded = latest_versions_recorded(this) -%}
    {%- set state, has_rows = recorded[0], recorded[1] -%}
    {%- if state is none
        or state.get('checksum') != core_patch_checksum()
        or state.get('has_rows') != has_rows -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- for upstream in upstreams -%}
        {%- if latest_versions_upstream_state(upstream) is none -%}
            {{- return(none) -}}
        {%- endif -%}
    {%- endfor -%}
    {{- return(state) -}}
{%- endmacro %}

{# The temporary table that holds, for the length of the model's transaction, the keys to recompute. #}
{% macro core_patch_keys_table() -%}
    pg_temp.{{ this.identifier }}__recompute
{%- endmacro %}

{#
    The filter of the model's import CTE of its own entity: on an incremental run, only the keys the
    pre-hook listed; on a full build, every record.
#}
{% macro core_patch_only_changed(key_column, upstreams) -%}
    {%- set state = core_patch_state(upstreams) -%}
    {%- if state is not none %}
    {{ key_column }} in (select {{ key_column }} from {{ core_patch_keys_table() }})
    {%- else %}
    true
    {%- endif -%}
{%- endmacro %}

{#
    Pre-hook: list the keys to recompute (`recompute`, a macro taking the state and returning a
    query of `key_column`) in a temporary table, then delete their rows; or empty the table for a
    full rebuild. The keys are listed before the delete, since they may depend on the fact's own
    rows (fct_deal_stage_history: the entries whose length runs to the cutoff).
#}
{% macro core_patch_forget(key_column, recompute, upstreams) -%}
    {%- if execute and is_incremental() -%}
        {%- set state = core_patch_state(upstreams) -%}
        {%- if state is not none -%}
            {#- the keys are few against the table: index lookups, which the default random_page_cost
                (4, a spinning disk) prices above a scan of the whole table (at L: delete 4.5 s -> 0.9 s,
                the rows of 55 k activities 5.2 s -> 1.8 s); for this transaction only #}
            set local random_page_cost = 1.1;
            create temporary table {{ core_patch_keys_table() }} on commit drop as
            {{ recompute(state) }};
            analyze {{ core_patch_keys_table() }};
            delete from {{ this }}
            where {{ key_column }} in (select {{ key_column }} from {{ core_patch_keys_table() }})
        {%- else -%}
            truncate {{ this }}
        {%- endif -%}
    {%- else -%}
        select 1 as nothing_to_forget
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook: record the state in the table comment, in the transaction that wrote the rows; no
    state (the next run rebuilds in full) when a staging model in `upstreams` was not built for
    tonight's as-of date.
#}
{% macro core_patch_remember(upstreams) -%}
    {%- set watermarks = [] -%}
    {%- if execute -%}
        {%- for upstream in upstreams -%}
            {%- set upstream_state = latest_versions_upstream_state(upstream) -%}
            {%- if upstream_state is not none -%}
                {%- do watermarks.append(upstream_state.through_file_id | int) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if not execute or watermarks | length != upstreams | length -%}
    comment on table {{ this }} is null
    {%- else -%}
    {{ latest_versions_record(watermarks | max, core_patch_checksum()) }}
    {%- endif -%}
{%- endmacro %}

{#
    The activities whose fct_activities row can have changed since `state`: those with a version
    typed since then or crossing the cutoff, and those naming a deal, CRM account, contact or sales
    rep whose existence can have changed.
#}
{% macro fct_activities_to_recompute(state) -%}
    select {{ b2b_key("'files'", 'activity_id') }} as activity_key
    from (
        {{ latest_versions_changed_keys(ref('base_files__activities'), ['activity_id'], state, crossing=['occurred_at']) | indent(8) }}
    ) as changed_activities
    union
    select activity_key
    from {{ ref('int_activities_unioned') }}
    where
        deal_key in (
            select {{ b2b_key("'files'", 'deal_id') }}
            from (
                {{ latest_versions_changed_keys(ref('base_files__deals'), ['deal_id'], state, crossing=['created_at']) | indent(16) }}
            ) as changed_deals
        )
        or crm_account_key in (
            select {{ b2b_key("'files'", 'account_id', kind='crm') }}
            from (
                {{ latest_versions_changed_keys(ref('base_files__accounts'), ['account_id'], state, crossing=['created_at']) | indent(16) }}
            ) as changed_accounts
        )
        or contact_key in (
            select {{ b2b_key("'files'", 'contact_id') }}
            from (
                {{ latest_versions_changed_keys(ref('base_files__contacts'), ['contact_id'], state, crossing=['created_at']) | indent(16) }}
            ) as changed_contacts
        )
        or owner_sales_rep_key in (
            select {{ b2b_key("'files'", 'user_id') }}
            from (
                {{ latest_versions_changed_keys(ref('base_files__users'), ['user_id'], state) | indent(16) }}
            ) as changed_users
        )
{%- endmacro %}

{# The staging and intermediate models whose state fct_activities' state is relative to. #}
{% macro fct_activities_upstreams() -%}
    {{- return([
        ref('stg_files__activities'),
        ref('stg_files__deals'),
        ref('stg_files__accounts'),
        ref('stg_files__contacts'),
        ref('stg_files__users'),
        ref('int_activities_unioned'),
    ]) -}}
{%- endmacro %}

{#
    The deals whose fct_deal_stage_history rows can have changed since `state`, other than by the
    cutoff alone: those with a stage entry typed since then or crossing the cutoff, those whose
    deal record can have changed (its existence, its close), and those with an entry in a stage
    whose record can have changed. The entries that run to the cutoff are moved on by
    fct_deal_stage_history_rerun_to_cutoff.
#}
{% macro fct_deal_stage_history_to_recompute(state) -%}
    select {{ b2b_key("'files'", 'deal_id') }} as deal_key
    from (
        {{ latest_versions_changed_keys(ref('base_files__deal_stage_history'), ['deal_id'], state, has_updated_at=false, crossing=['entered_at']) | indent(8) }}
    ) as changed_entries
    union
    select {{ b2b_key("'files'", 'deal_id') }}
    from (
        {{ latest_versions_changed_keys(ref('base_files__deals'), ['deal_id'], state, crossing=['created_at', 'closed_at']) | indent(8) }}
    ) as changed_deals
    union
    select deal_key
    from {{ ref('int_deal_stage_history_unioned') }}
    where stage_key in (
        select {{ b2b_key("'files'", 'stage_id') }}
        from (
            {{ latest_versions_changed_keys(ref('base_files__stages'), ['stage_id'], state) | indent(12) }}
        ) as changed_stages
    )
{%- endmacro %}

{#
    Post-hook of fct_deal_stage_history, before its state is recorded: when the as-of date moved,
    the entries without an exit (still running) run to tonight's cutoff. Their deals' other columns
    do not depend on the cutoff, and a deal whose close crossed it was recomputed whole.
#}
{% macro fct_deal_stage_history_rerun_to_cutoff() -%}
    {%- set state = core_patch_state(fct_deal_stage_history_upstreams()) -%}
    {%- if state is not none and state.as_of_date != as_of_date_literal() -%}
        update {{ this }}
        set days_in_stage = {{ days_between('entered_at', cutoff()) }}
        where exited_at is null
    {%- else -%}
        select 1 as nothing_runs_to_a_new_cutoff
    {%- endif -%}
{%- endmacro %}

{# The staging and intermediate models whose state fct_deal_stage_history's state is relative to. #}
{% macro fct_deal_stage_history_upstreams() -%}
    {{- return([
        ref('stg_files__deal_stage_history'),
        ref('stg_files__deals'),
        ref('stg_files__stages'),
        ref('int_deal_stage_history_unioned'),
    ]) -}}
{%- endmacro %}

{#
    The contacts whose dim_contacts row can have changed since `state`: those with a version typed
    since then or crossing the cutoff, those with such a deal link (its role and the deal count
    come from all of the contact's links), and those of a CRM account whose existence can have
    changed.
#}
{% macro dim_contacts_to_recompute(state) -%}
    select {{ b2b_key("'files'", 'contact_id') }} as contact_key
    from (
        {{ latest_versions_changed_keys(ref('base_files__contacts'), ['contact_id'], state, crossing=['created_at']) | indent(8) }}
    ) as changed_contacts
    union
    select {{ b2b_key("'files'", 'contact_id') }}
    from (
        {{ latest_versions_changed_keys(ref('base_files__deal_contacts'), ['deal_id', 'contact_id'], state) | indent(8) }}
    ) as changed_deal_contacts
    union
    select contact_key
    from {{ ref('int_contacts_unioned') }}
    where crm_account_key in (
        select {{ b2b_key("'files'", 'account_id', kind='crm') }}
        from (
            {{ latest_versions_changed_keys(ref('base_files__accounts'), ['account_id'], state, crossing=['created_at']) | indent(12) }}
        ) as changed_accounts
    )
{%- endmacro %}

{# The staging models whose state dim_contacts' state is relative to. #}
{% macro dim_contacts_upstreams() -%}
    {{- return([
        ref('stg_files__contacts'),
        ref('stg_files__deal_contacts'),
        ref('stg_files__accounts'),
    ]) -}}
{%- endmacro %}
