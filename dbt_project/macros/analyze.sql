{#
    Post-hook of every model: refresh the planner statistics of a freshly built table, so that the
    models reading it get sane join plans. A view has no statistics of its own; the hook does
    nothing for it.

    An incremental table is analyzed when this run changed as many of its rows as make autovacuum
    analyze a table (`autovacuum_analyze_threshold` rows plus `autovacuum_analyze_scale_factor` of
    the table: 50 and 10% by default), counted by the run's transaction (the changes since the
    last analyze are no measure: those of a run that analyzed the table in its transaction are
    counted at its commit, after the analyze); and always when it has no statistics yet. A night
    that patches 0.7% of an 8 M-row table leaves its statistics as they were instead of sampling
    it again (3.4 s for `fct_activities` at L); the changes of many such nights are autovacuum's
    to catch up with, as for any table.
#}
{% macro analyze_relation() -%}
    {%- if config.get('materialized') == 'table' -%}
        analyze {{ this }}
    {%- elif config.get('materialized') == 'incremental' -%}
        do $analyze_relation$
        begin
            if (
                select
                    c.reltuples < 0
                    or pg_stat_get_xact_tuples_inserted(c.oid)
                    + pg_stat_get_xact_tuples_updated(c.oid)
                    + pg_stat_get_xact_tuples_deleted(c.oid)
                    > current_setting('autovacuum_analyze_threshold')::float8
                    + current_setting('autovacuum_analyze_scale_factor')::float8 * c.reltuples
                from pg_class as c
                where c.oid = '{{ this }}'::regclass
            ) then
                analyze {{ this }};
            end if;
        end
        $analyze_relation$
    {%- else -%}
        select 1 as no_statistics_for_a_view
    {%- endif -%}
{%- endmacro %}
