{#
    The indexes an incremental model declares, created when its table lacks them.

    dbt creates a model's `indexes` only when it creates the table. An incremental table
    that outlives that (carried over from the star of an older version, or built before the
    index was declared) would otherwise never get a new one, and the patch that looks keys
    up in it would scan instead. A post-hook (dbt_project.yml): for each declared index,
    a table without a valid index of that access method, uniqueness and column list gets
    one, named as dbt names it. A catalogue lookup per index on the nights it has them.
#}
{% macro ensure_indexes() -%}
    {%- set indexes = config.get('indexes') or [] -%}
    {#- nothing for other models: dbt skips a hook that renders empty -#}
    {%- if config.get('materialized') == 'incremental' and indexes -%}
        do $ensure_indexes$
        begin
        {%- for index in indexes %}
            {%- set parsed = adapter.parse_index(index) %}
            if not exists (
                select 1
                from pg_index as i
                inner join pg_class as c on c.oid = i.indexrelid
                inner join pg_am as am on am.oid = c.relam
                where i.indrelid = '{{ this }}'::regclass
                    and i.indisvalid
                    and i.indpred is null
                    and i.indexprs is null
                    and i.indisunique = {{ 'true' if parsed.unique else 'false' }}
                    and am.amname = '{{ parsed.type or "btree" }}'
                    and (
                        select array_agg(a.attname::text order by k.position)
                        from unnest(i.indkey::int2[]) with ordinality as k (attnum, position)
                        inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
                    ) = array[{% for column in parsed.columns %}'{{ column }}'{{ ', ' if not loop.last }}{% endfor %}]::text[]
            ) then
                raise notice 'creating the index on {{ this }} ({{ parsed.columns | join(", ") }}) that the table lacks';
                execute $create_index${{ get_create_index_sql(this, index) | trim }}$create_index$;
            end if;
        {%- endfor %}
        end
        $ensure_indexes$
    {%- endif -%}
{%- endmacro %}
