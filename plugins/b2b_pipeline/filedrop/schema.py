"""DDL of the raw layer `raw_files` (see docs/raw-layer.md), created idempotently."""

from __future__ import annotations

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.spec import ENTITIES, Entity

SCHEMA = "raw_files"

BOOKKEEPING_DDL = """
create schema if not exists raw_files;
create sequence if not exists raw_files.batch_id_seq;
create table if not exists raw_files.load_batches (
    batch_id bigint primary key default nextval('raw_files.batch_id_seq'),
    source_dir text not null,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    files_loaded integer not null default 0,
    files_skipped integer not null default 0,
    files_refused integer not null default 0,
    rows_loaded bigint not null default 0,
    rows_quarantined bigint not null default 0
);
create sequence if not exists raw_files.file_id_seq;
create table if not exists raw_files.file_loads (
    file_id bigint primary key default nextval('raw_files.file_id_seq'),
    batch_id bigint not null references raw_files.load_batches (batch_id),
    file text not null,
    system text not null,
    entity text not null,
    folder_date date,
    content_sha256 text not null,
    bytes bigint not null,
    format text not null,
    delimiter text,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    loaded_at timestamptz not null default clock_timestamp(),
    unique (entity, content_sha256)
);
-- the file's modification and status-change times (ns) when it was read: a file at the same path with
-- the same size and both times is skipped without being hashed again (see loader.load_file)
alter table raw_files.file_loads add column if not exists file_mtime_ns bigint;
alter table raw_files.file_loads add column if not exists file_ctime_ns bigint;
create table if not exists raw_files.file_refusals (
    batch_id bigint not null references raw_files.load_batches (batch_id),
    file text not null,
    reason text not null,
    refused_at timestamptz not null default clock_timestamp()
);
create table if not exists raw_files.quarantine (
    batch_id bigint not null references raw_files.load_batches (batch_id),
    file_id bigint not null references raw_files.file_loads (file_id),
    file text not null,
    line bigint not null,
    entity text not null,
    reason text not null,
    raw_row jsonb not null,
    quarantined_at timestamptz not null default clock_timestamp()
);
create index if not exists quarantine_batch_entity on raw_files.quarantine (batch_id, entity);
"""

# PostgreSQL 16+ checks an input without raising (pg_input_is_valid); 15 needs an exception block,
# which is a subtransaction, which a parallel worker cannot start: hence `parallel restricted`
# (the leader evaluates it; a parallel plan would otherwise fail on a big enough file).
IS_VALID_INPUT_16 = """
create or replace function raw_files.is_valid_input(value text, type_name text)
returns boolean language sql stable parallel safe
as $$ select pg_input_is_valid(value, type_name) $$;
"""
IS_VALID_INPUT_15 = """
create or replace function raw_files.is_valid_input(value text, type_name text)
returns boolean language plpgsql stable parallel restricted
as $$
begin
    if value is null then return null; end if;
    case type_name
        when 'timestamptz' then perform value::timestamptz;
        when 'date' then perform value::date;
        when 'numeric' then perform value::numeric;
        when 'bigint' then perform value::bigint;
        when 'jsonb' then perform value::jsonb;
        else raise exception 'is_valid_input: unsupported type %', type_name;
    end case;
    return true;
exception when others then
    return false;
end
$$;
"""


# The session setting naming the file being loaded: the loader sets it (transaction-local)
# to the file's id before it COPYs, and `_file_id` defaults to it. Unlike currval(), which
# is volatile, reading a setting is stable, so COPY may still insert rows in batches.
FILE_ID_SETTING = "b2b.file_id"
FILE_ID_DEFAULT = f"(current_setting('{FILE_ID_SETTING}'::text))::bigint"


def line_sequence(entity: Entity) -> sql.Identifier:
    """The sequence numbering the lines of the file being loaded into `entity`."""
    return sql.Identifier(SCHEMA, f"{entity.name}__line_seq")


def entity_table(entity: Entity) -> sql.Identifier:
    return sql.Identifier(SCHEMA, entity.name)


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create (or complete) the raw layer: bookkeeping, helper function, one table per entity."""
    with conn.transaction():
        # one session at a time creates it: concurrent `create ... if not exists` can collide
        conn.execute("select pg_advisory_xact_lock(hashtext('raw_files ddl'))")
        conn.execute(BOOKKEEPING_DDL)
        conn.execute(IS_VALID_INPUT_16 if conn.info.server_version >= 160000 else IS_VALID_INPUT_15)
        for entity in ENTITIES:
            table = entity_table(entity)
            seq = line_sequence(entity)
            # cached: the COPY of a file draws one value a row, which must cost next to nothing
            conn.execute(sql.SQL("create sequence if not exists {} cache 10000").format(seq))
            columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c.name)) for c in entity.columns)
            conn.execute(
                sql.SQL(
                    "create table if not exists {} ({}, "
                    "_file_id bigint not null default {}, "
                    "_line bigint not null default nextval({}), _extra jsonb)"
                ).format(table, columns, sql.SQL(FILE_ID_DEFAULT), sql.Literal(f"{SCHEMA}.{entity.name}__line_seq"))
            )
            for column in entity.columns:
                conn.execute(
                    sql.SQL("alter table {} add column if not exists {} text").format(
                        table, sql.Identifier(column.name)
                    )
                )
            _upgrade_file_id_default(conn, entity)
            conn.execute(
                sql.SQL("create index if not exists {} on {} using brin (_file_id)").format(
                    sql.Identifier(f"{entity.name}__file_id_brin"), table
                )
            )


def _upgrade_file_id_default(conn: psycopg.Connection, entity: Entity) -> None:
    """Give `_file_id` of a table created by an older version (default currval(), which
    makes COPY insert row by row) the default of FILE_ID_DEFAULT."""
    current = conn.execute(
        "select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d join pg_attribute a "
        "on a.attrelid = d.adrelid and a.attnum = d.adnum where d.adrelid = %s::regclass and a.attname = '_file_id'",
        (f"{SCHEMA}.{entity.name}",),
    ).fetchone()
    if current is None or FILE_ID_SETTING not in current[0]:
        conn.execute(
            sql.SQL("alter table {} alter column _file_id set default {}").format(
                entity_table(entity), sql.SQL(FILE_ID_DEFAULT)
            )
        )
