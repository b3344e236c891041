{#
    landed(source_name, table_name): the raw table of an API stream (sources/landing.py), or an
    empty relation of the same columns while that source system has never landed (it is not
    configured): the staging models of every source system build on every warehouse, and a source
    that is not used contributes no row. The `source()` call is made either way, so that lineage and
    freshness know the table. Give it an alias where it is used (`from {{ landed(...) }} as x`):
    PostgreSQL before 16 requires one on a subquery.
#}
{% macro landed(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
        (
            select
                cast(null as text) as record_id,
                cast(null as timestamptz) as updated_at,
                false as is_deleted,
                cast(null as jsonb) as doc,
                cast(null as text) as _version,
                cast(null as timestamptz) as _extracted_at,
                cast(null as text) as _dlt_load_id,
                cast(null as text) as _dlt_id
            where false
        )
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#
    latest_landed_versions(relation): each record's latest version in `relation` (a landed stream,
    or a CTE over one) updated before the night's cutoff; on a tie a deletion wins, then the later
    extraction. Whether that version is a deletion is left to the model (`is_deleted`).
#}
{% macro latest_landed_versions(relation) -%}
    select distinct on (record_id) *
    from {{ relation }}
    where updated_at < {{ cutoff() }}
    order by record_id asc, updated_at desc, is_deleted desc, _extracted_at desc
{%- endmacro %}
