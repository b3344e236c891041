{#
    Incremental "latest version" staging models (docs/raw-layer.md, "Incremental staging").

    A staging model keeps one row per key: the latest version updated before the cutoff. A night
    recomputes only the keys whose answer can have changed since the model's last run:

      - keys with a version in a file typed since then (_file_id above the recorded watermark);
      - keys with a version whose updated_at lies between the last run's cutoff and tonight's, in
        either direction (the as-of date moved forward, or back for a rerun of an older night).

    Each such key is recomputed from all of its versions: its rows are deleted (pre-hook) and its
    latest version before the cutoff, unless that is a delete, is inserted. Any other key's answer
    is unchanged, because its versions and their side of the cutoff are. Key columns are required
    columns (the loader quarantines a row without one), so `(key) in (...)` finds every row of a
    key. The model records its state (watermark, as-of date, the checksum of its own SQL file,
    whether it has rows) in its table comment, in the transaction that writes its rows. Without a
    usable state (first run, --full-refresh, the model's SQL changed, a crash emptied the unlogged
    table, a comment not ours) the model is rebuilt in full.

    The intermediate models that read one staging model and keep the rows before the cutoff of an
    event time (int_activities_unioned: occurred_at) work the same way, with two additions:
      - `crossing`: their event-time columns; keys with a version whose value lies between the last
        run's cutoff and tonight's are recomputed too (they enter or leave the model);
      - `upstream`: the staging model they read. They take its watermark, and they are patched only
        when it was built for tonight's as-of date, from the same SQL (checksum) as on their last
        run; else they are rebuilt in full, and patched again once both are current.
#}

{#
    The checksum of the SQL a model's rows come from: its own file and the project's macros (the
    var `macros_checksum`, which b2b_pipeline.transform.night_vars computes from macros/; a column
    list in macros/unioned.sql is part of a unioned model's SQL). dbt run without the var gives
    another checksum than a night's, so such a run rebuilds in full: never a stale table.
#}
{% macro sql_checksum() -%}
    {{- return(local_md5(model.checksum.checksum ~ ':' ~ var('macros_checksum', '') ~ ':' ~ night_settings_key())) -}}
{%- endmacro %}

{#
    The night's source systems and reporting time zone (the vars crm_source, billing_source and
    reporting_timezone, which night_vars sets from b2b.yml or B2B_* variables), as one string: part of
    every recorded checksum, so that switching a source or the zone (which moves the cutoff and every
    date) rebuilds the incremental models in full rather than mixing old and new rows in one table.
    No incremental model holds a converted amount or depends on the pipelines that count: the tables
    that do are rebuilt every night.
#}
{% macro night_settings_key() -%}
    {{- return(
        'crm=' ~ var('crm_source', 'files') ~ ',billing=' ~ var('billing_source', 'files')
        ~ ',zone=' ~ reporting_timezone()
    ) -}}
{%- endmacro %}

{#
    Whether every source of the night is the file drop. The incremental models downstream of the
    staging layer find what changed through the file drop's load watermarks (_file_id), which an
    API source's rows do not have: with an API source they are rebuilt in full every night.
#}
{% macro files_only() -%}
    {{- return(var('crm_source', 'files') == 'files' and var('billing_source', 'files') == 'files') -}}
{%- endmacro %}

{#
    The state the model recorded on its last run, as a dict, or none when it must be rebuilt in full.
    The staging tables are unlogged: a crash empties them but keeps their comment, so a state that
    says the table had rows while it has none is not usable either.
#}
{% macro latest_versions_state(upstream=none) -%}
    {%- if not execute or not is_incremental() -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set recorded = latest_versions_recorded(this) -%}
    {%- set state, has_rows = recorded[0], recorded[1] -%}
    {%- if state is none
        or state.get('checksum') != sql_checksum()
        or state.get('has_rows') != has_rows -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if upstream is not none -%}
        {%- if not files_only() -%}
            {{- return(none) -}}
        {%- endif -%}
        {%- set upstream_state = latest_versions_upstream_state(upstream) -%}
        {%- if upstream_state is none or upstream_state.get('checksum') != state.get('upstream_checksum') -%}
            {{- return(none) -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(state) -}}
{%- endmacro %}

{#
    The state recorded in the comment of `relation` (a dict with a valid as-of date and watermark,
    else none) and whether the relation has rows.
#}
{% macro latest_versions_recorded(relation) -%}
    {%- set prefix = 'b2b latest versions: ' -%}
    {%- set row = run_query(
        "select obj_description(to_regclass('" ~ relation ~ "'), 'pg_class'), exists (select from " ~ relation ~ ")"
    ).rows[0] -%}
    {%- set comment, has_rows = row[0], row[1] -%}
    {%- if comment is none or not comment.startswith(prefix) -%}
        {{- return([none, has_rows]) -}}
    {%- endif -%}
    {%- set state = fromjson(comment[prefix | length:], none) -%}
    {%- if state is not mapping
        or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', state.get('as_of_date') | string)
        or state.get('through_file_id') is not number -%}
        {{- return([none, has_rows]) -}}
    {%- endif -%}
    {{- return([state, has_rows]) -}}
{%- endmacro %}

{# The state of the staging model `upstream` when it was built for tonight's as-of date, else none. #}
{% macro latest_versions_upstream_state(upstream) -%}
    {%- set state = latest_versions_recorded(upstream)[0] -%}
    {%- if state is none or state.as_of_date != as_of_date_literal() -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(state) -}}
{%- endmacro %}

{#
    The keys to recompute, as a subquery of `key_columns` over `base`, given the recorded `state`.
    `has_updated_at`: whether the entity's versions are cut off by updated_at (fx rates and stage
    entries are not); `crossing`: event-time columns cut off by the model itself.
#}
{% macro latest_versions_changed_keys(base, key_columns, state, has_updated_at=true, crossing=[]) -%}
    {%- set last_cutoff -%}
        {{ day_start_literal(state.as_of_date) }}
    {%- endset -%}
    select {{ key_columns | join(', ') }}
    from {{ base }}
    where _file_id > {{ state.through_file_id | int }}
    {%- if state.as_of_date != as_of_date_literal() %}
        {%- for column in (['updated_at'] if has_updated_at else []) + crossing %}
        or (
            {{ column }} >= least({{ last_cutoff }}, {{ cutoff() }})
            and {{ column }} < greatest({{ last_cutoff }}, {{ cutoff() }})
        )
        {%- endfor %}
    {%- endif %}
{%- endmacro %}

{#
    The filter of the model's `versions` CTE: on an incremental run, only the versions of the keys
    to recompute; on a full build, nothing.
#}
{% macro latest_versions_only_changed(base, key_columns, has_updated_at=true, crossing=[], upstream=none) -%}
    {%- set state = latest_versions_state(upstream) -%}
    {%- if state is not none %}
    ({{ key_columns | join(', ') }}) in (
        {{ latest_versions_changed_keys(base, key_columns, state, has_updated_at, crossing) | indent(8) }}
    )
    {%- else %}
    true
    {%- endif -%}
{%- endmacro %}

{#
    Pre-hook: before an incremental run inserts the recomputed keys, delete their rows; without a
    usable state, empty the table (the run then inserts every key).
#}
{% macro latest_versions_forget_changed(base, key_columns, has_updated_at=true, crossing=[], upstream=none) -%}
    {%- if execute and is_incremental() -%}
        {%- set state = latest_versions_state(upstream) -%}
        {%- if state is not none -%}
            delete from {{ this }}
            where ({{ key_columns | join(', ') }}) in (
                {{ latest_versions_changed_keys(base, key_columns, state, has_updated_at, crossing) }}
            )
        {%- else -%}
            truncate {{ this }}
        {%- endif -%}
    {%- else -%}
        select 1 as nothing_to_forget
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook: record this run's state in the table comment, in the transaction that wrote the rows:
    the newest raw file typed into `base` (the watermark; for a model with an `upstream` staging
    model, that model's watermark and the checksum of its SQL), the as-of date, the checksum of the
    model's SQL file, and whether the table has rows. A model whose upstream was not built for
    tonight records no state: its next run rebuilds it in full.
#}
{% macro latest_versions_remember(base, upstream=none) -%}
    {%- set upstream_state = latest_versions_upstream_state(upstream) if execute and upstream is not none else none -%}
    {%- if upstream is not none and upstream_state is none -%}
    comment on table {{ this }} is null
    {%- else -%}
    {{ latest_versions_record(
        upstream_state.through_file_id | int if upstream_state is not none
        else '(select coalesce(max(_file_id), 0) from ' ~ base ~ ')',
        sql_checksum() if execute else '',
        {'upstream_checksum': upstream_state.checksum} if upstream_state is not none else {}
    ) }}
    {%- endif -%}
{%- endmacro %}

{#
    The statement that records a state in the table comment: the watermark `through_file_id` (a
    number or a scalar SQL query), tonight's as-of date, `checksum`, the `extra` entries, and whether
    the table has rows.
#}
{% macro latest_versions_record(through_file_id, checksum, extra={}) -%}
    do $$
    begin
        execute format(
            'comment on table %s is %L',
            '{{ this }}',
            'b2b latest versions: ' || json_build_object(
                'through_file_id', {{ through_file_id }},
                'as_of_date', '{{ as_of_date_literal() }}',
                'checksum', '{{ checksum }}',
                {%- for key, value in extra.items() %}
                '{{ key }}', '{{ value }}',
                {%- endfor %}
                'has_rows', exists (select from {{ this }})
            )::text
        );
    end
    $$
{%- endmacro %}
