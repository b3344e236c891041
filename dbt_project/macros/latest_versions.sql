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
#}

{#
    The state the model recorded on its last run, as a dict, or none when it must be rebuilt in full.
    The staging tables are unlogged: a crash empties them but keeps their comment, so a state that
    says the table had rows while it has none is not usable either.
#}
{% macro latest_versions_state() -%}
    {%- if not execute or not is_incremental() -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set prefix = 'b2b latest versions: ' -%}
    {%- set row = run_query(
        "select obj_description(to_regclass('" ~ this ~ "'), 'pg_class'), exists (select from " ~ this ~ ")"
    ).rows[0] -%}
    {%- set comment, has_rows = row[0], row[1] -%}
    {%- if comment is none or not comment.startswith(prefix) -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set state = fromjson(comment[prefix | length:], none) -%}
    {%- if state is not mapping
        or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', state.get('as_of_date') | string)
        or state.get('through_file_id') is not number
        or state.get('checksum') != model.checksum.checksum
        or state.get('has_rows') != has_rows -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(state) -}}
{%- endmacro %}

{#
    The keys to recompute, as a subquery of `key_columns` over `base`, given the recorded `state`.
    `has_updated_at`: whether the entity's versions are cut off by updated_at (fx rates and stage
    entries are not).
#}
{% macro latest_versions_changed_keys(base, key_columns, state, has_updated_at=true) -%}
    {%- set last_cutoff -%}
        ((date '{{ state.as_of_date }}' + 1)::timestamp at time zone 'UTC')
    {%- endset -%}
    select {{ key_columns | join(', ') }}
    from {{ base }}
    where _file_id > {{ state.through_file_id | int }}
    {%- if has_updated_at and state.as_of_date != as_of_date_literal() %}
        or (
            updated_at >= least({{ last_cutoff }}, {{ cutoff() }})
            and updated_at < greatest({{ last_cutoff }}, {{ cutoff() }})
        )
    {%- endif %}
{%- endmacro %}

{#
    The filter of the model's `versions` CTE: on an incremental run, only the versions of the keys
    to recompute; on a full build, nothing.
#}
{% macro latest_versions_only_changed(base, key_columns, has_updated_at=true) -%}
    {%- set state = latest_versions_state() -%}
    {%- if state is not none %}
    ({{ key_columns | join(', ') }}) in (
        {{ latest_versions_changed_keys(base, key_columns, state, has_updated_at) | indent(8) }}
    )
    {%- else %}
    true
    {%- endif -%}
{%- endmacro %}

{#
    Pre-hook: before an incremental run inserts the recomputed keys, delete their rows; without a
    usable state, empty the table (the run then inserts every key).
#}
{% macro latest_versions_forget_changed(base, key_columns, has_updated_at=true) -%}
    {%- if execute and is_incremental() -%}
        {%- set state = latest_versions_state() -%}
        {%- if state is not none -%}
            delete from {{ this }}
            where ({{ key_columns | join(', ') }}) in (
                {{ latest_versions_changed_keys(base, key_columns, state, has_updated_at) }}
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
    the newest raw file typed into `base` (the watermark), the as-of date, the checksum of the
    model's SQL file, and whether the table has rows.
#}
{% macro latest_versions_remember(base) -%}
    do $$
    begin
        execute format(
            'comment on table %s is %L',
            '{{ this }}',
            'b2b latest versions: ' || json_build_object(
                'through_file_id', (select coalesce(max(_file_id), 0) from {{ base }}),
                'as_of_date', '{{ as_of_date_literal() }}',
                'checksum', '{{ model.checksum.checksum if execute else "" }}',
                'has_rows', exists (select from {{ this }})
            )::text
        );
    end
    $$
{%- endmacro %}
