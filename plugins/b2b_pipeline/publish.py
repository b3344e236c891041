"""Write-audit-publish: candidate schemas, an atomic swap, and the `bi_reader` role.

dbt builds the core star and the marts into `core__candidate` and
`marts__candidate`; the quality gate validates them there; `publish()` then
renames, in one transaction, each published schema to `<schema>__previous` and
each candidate to the published name, and grants `bi_reader` read access to the
new published schemas inside the same transaction. Readers see either the old
night or the new one, never a mix; a night that does not publish leaves the
published schemas exactly as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

PUBLISHED_SCHEMAS: tuple[str, ...] = ("core", "marts")
BI_READER = "bi_reader"
# personal data stays out of bi_reader's reach even in published schemas: (schema, table)
PRIVATE_TABLES: tuple[tuple[str, str], ...] = (("core", "dim_contacts"),)
# schemas that only the pipeline reads
PRIVATE_SCHEMAS: tuple[str, ...] = ("raw_files", "staging", "intermediate", "public")


def candidate(schema: str) -> str:
    """The schema a night builds `schema` into before the gate."""
    return f"{schema}__candidate"


def previous(schema: str) -> str:
    """Where the last published version of `schema` is kept after a swap, for one night."""
    return f"{schema}__previous"


class PublishError(RuntimeError):
    """The candidate schemas cannot be published."""


@dataclass(frozen=True)
class PublishResult:
    schemas: tuple[str, ...]
    tables: int


def prepare_candidates(dsn: str, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS) -> None:
    """Drop yesterday's leftover candidates so that tonight's build starts clean."""
    with connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(candidate(schema))))


def ensure_bi_reader(conn: psycopg.Connection) -> None:
    """Create the `bi_reader` group role (no login) and keep it out of the private schemas."""
    conn.execute(
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {}) then "
            "create role {} nologin; end if; end $$"
        ).format(sql.Literal(BI_READER), sql.Identifier(BI_READER))
    )
    for schema in PRIVATE_SCHEMAS:
        exists = conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone()
        if exists:
            conn.execute(sql.SQL("revoke all on schema {} from public").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("revoke all on all tables in schema {} from public, {}").format(
                    sql.Identifier(schema), sql.Identifier(BI_READER)
                )
            )


def grant_bi_reader(conn: psycopg.Connection, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS) -> None:
    """USAGE and SELECT on the published schemas, nothing on private tables; idempotent."""
    reader = sql.Identifier(BI_READER)
    for schema in schemas:
        ident = sql.Identifier(schema)
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident, reader))
        conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(ident, reader))
    for schema, table in PRIVATE_TABLES:
        if schema in schemas:
            conn.execute(sql.SQL("revoke all on table {} from {}").format(sql.Identifier(schema, table), reader))


def publish(dsn: str, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS, *, lock_timeout: str = "30s") -> PublishResult:
    """Swap every candidate schema in, atomically. Raises PublishError when a candidate is missing."""
    with connect(dsn) as conn:
        missing = [
            candidate(s)
            for s in schemas
            if not conn.execute("select 1 from pg_namespace where nspname = %s", (candidate(s),)).fetchone()
        ]
        if missing:
            raise PublishError(f"nothing to publish: candidate schema(s) {', '.join(missing)} missing")
        with conn.transaction():
            # a long BI query holding a lock on a published table must not stall the night forever
            conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(lock_timeout)))
            ensure_bi_reader(conn)
            for schema in schemas:
                published, cand, prev = (sql.Identifier(x) for x in (schema, candidate(schema), previous(schema)))
                conn.execute(sql.SQL("drop schema if exists {} cascade").format(prev))
                if conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone():
                    conn.execute(sql.SQL("alter schema {} rename to {}").format(published, prev))
                    conn.execute(sql.SQL("revoke all on schema {} from {}").format(prev, sql.Identifier(BI_READER)))
                conn.execute(sql.SQL("alter schema {} rename to {}").format(cand, published))
            grant_bi_reader(conn, schemas)
            tables = conn.execute(
                "select count(*) from pg_tables where schemaname = any(%s)", (list(schemas),)
            ).fetchone()[0]  # type: ignore[index]
    log.info("published %s (%s tables)", ", ".join(schemas), tables)
    return PublishResult(schemas=schemas, tables=tables)
