"""Write-audit-publish: candidate schemas, an atomic swap, and the `bi_reader` role.

dbt builds the core star and the marts into `core__candidate` and
`marts__candidate`; the quality gate validates them there; `publish()` then
renames, in one transaction, each published schema to `<schema>__previous` and
each candidate to the published name, and grants `bi_reader` read access to the
new published schemas inside the same transaction. Readers see either the old
night or the new one, never a mix; a night that does not publish leaves the
published schemas exactly as they were.

The tables of `CARRIED_TABLES` are patched by each night rather than rebuilt
(incremental dbt models, macros/core_patch.sql): `prepare_candidates` carries
them over into tonight's candidate schema, from the candidate a night left
unpublished or else from `<schema>__previous`, and drops everything else.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from b2b_pipeline.config import publish_cancel_readers, publish_wait_seconds
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

PUBLISHED_SCHEMAS: tuple[str, ...] = ("core", "marts")
# the one-row mart of the settings the marts were built with (docs/metrics.md marts.reporting_settings)
SETTINGS_MART = "reporting_settings"
BI_READER = "bi_reader"
# personal data stays out of bi_reader's reach even in published schemas: (schema, table)
PRIVATE_TABLES: tuple[tuple[str, str], ...] = (("core", "dim_contacts"),)
# schemas that only the pipeline reads
PRIVATE_SCHEMAS: tuple[str, ...] = ("raw_files", "staging", "intermediate", "public")
# tables each night patches instead of rebuilding (incremental dbt models), carried over from one
# candidate schema to the next: published schema -> table names
CARRIED_TABLES: dict[str, tuple[str, ...]] = {"core": ("dim_contacts", "fct_activities", "fct_deal_stage_history")}


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
    cancelled: tuple[str, ...] = ()  # the readers cancelled because they held the swap up too long


def prepare_candidates(dsn: str, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS) -> None:
    """Start tonight's candidate schemas: drop what the night rebuilds and carry over what it patches.

    A schema without carried tables starts empty (its candidate is dropped). For one with carried
    tables, the candidate a night left unpublished (blocked or failed) is kept, or else the schema
    published the night before last (`<schema>__previous`) becomes the candidate; everything in it
    but the carried tables is dropped, and so is any view on a carried table, wherever it is. Each
    carried table records in its comment the state it holds, from which dbt patches it (or rebuilds
    it, when that state is unusable). One transaction.
    """
    with connect(dsn) as conn, conn.transaction():
        for schema in schemas:
            cand = candidate(schema)
            carried = CARRIED_TABLES.get(schema, ())
            if not carried:
                conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(cand)))
                continue
            if not _schema_exists(conn, cand) and _schema_exists(conn, previous(schema)):
                conn.execute(
                    sql.SQL("alter schema {} rename to {}").format(
                        sql.Identifier(previous(schema)), sql.Identifier(cand)
                    )
                )
                log.info("carrying %s over from %s", ", ".join(carried), previous(schema))
            # a view on a carried table (built while it was published, it followed the table out of
            # `schema`) is dropped, as it was with `<schema>__previous`, rather than see it patched
            dependent = conn.execute(
                "select distinct v.oid::regclass::text, v.relkind from pg_depend d "
                "join pg_rewrite r on r.oid = d.objid and d.classid = 'pg_rewrite'::regclass "
                "join pg_class v on v.oid = r.ev_class "
                "join pg_class t on t.oid = d.refobjid join pg_namespace n on n.oid = t.relnamespace "
                "where n.nspname = %s and t.relname = any(%s) and v.oid <> t.oid",
                (cand, list(carried)),
            ).fetchall()
            for view, kind in dependent:
                what = "materialized view" if kind == "m" else "view"
                conn.execute(sql.SQL("drop {} if exists {} cascade").format(sql.SQL(what), sql.SQL(view)))
                log.info("dropped the view %s: it reads a table tonight patches", view)
            rebuilt = conn.execute(
                "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') and not (c.relname = any(%s)) "
                "order by c.relname",
                (cand, list(carried)),
            ).fetchall()
            for name, kind in rebuilt:
                what = {"v": "view", "m": "materialized view", "f": "foreign table"}.get(kind, "table")
                conn.execute(sql.SQL("drop {} if exists {} cascade").format(sql.SQL(what), sql.Identifier(cand, name)))


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is not None


def ensure_bi_reader(conn: psycopg.Connection) -> None:
    """Create the `bi_reader` group role (no login) and keep it out of the private schemas."""
    conn.execute(
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {}) then "
            "create role {} nologin; end if; end $$"
        ).format(sql.Literal(BI_READER), sql.Identifier(BI_READER))
    )
    for schema in PRIVATE_SCHEMAS:
        if _schema_exists(conn, schema):
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


def publish(
    dsn: str,
    schemas: tuple[str, ...] = PUBLISHED_SCHEMAS,
    *,
    lock_timeout: str = "2s",
    wait_seconds: float | None = None,
    cancel_readers: bool | None = None,
) -> PublishResult:
    """Swap every candidate schema in, atomically. Raises PublishError when a candidate is missing.

    The swap drops the schemas published the night before last, whose tables a long BI query may
    still be reading. Each try waits at most `lock_timeout` for its locks (so that BI queries queued
    behind it stall no longer than that), then it tries again, for `wait_seconds`
    (`B2B_PUBLISH_WAIT_SECONDS`); past that, the reading sessions in its way are cancelled (an idle
    transaction is ended) and named in the result and the log, unless `cancel_readers` is false
    (`B2B_PUBLISH_CANCEL_READERS`), when the night fails naming them. Readers never see a mix.
    """
    wait = publish_wait_seconds() if wait_seconds is None else wait_seconds
    cancel = publish_cancel_readers() if cancel_readers is None else cancel_readers
    deadline = time.monotonic() + wait
    cancelled: list[str] = []
    pause = 0.5
    rounds = 0  # of cancelling the readers in the way
    with connect(dsn, autocommit=True) as conn:
        missing = [candidate(s) for s in schemas if not _schema_exists(conn, candidate(s))]
        if missing:
            raise PublishError(f"nothing to publish: candidate schema(s) {', '.join(missing)} missing")
        for attempt in itertools.count(1):
            try:
                tables = _swap(conn, schemas, lock_timeout)
                break
            except psycopg.errors.LockNotAvailable:
                readers = _readers_in_the_way(conn, schemas)
                shown = "; ".join(r.describe() for r in readers) or "sessions that have since ended"
                if time.monotonic() < deadline:
                    log.warning("publish: try %s waits for readers of the published tables: %s", attempt, shown)
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, 10.0)
                    continue
                rounds += 1
                if not cancel or rounds > CANCEL_TRIES:
                    raise PublishError(
                        f"could not publish: after {wait:g} s readers still hold the published tables: {shown}"
                    ) from None
                for reader in readers:
                    reader.stop(conn)
                    cancelled.append(reader.describe())
                    log.warning("publish: cancelled a reader in the way after %g s: %s", wait, reader.describe())
                time.sleep(0.2)
    log.info("published %s (%s tables)", ", ".join(schemas), tables)
    return PublishResult(schemas=schemas, tables=tables, cancelled=tuple(cancelled))


CANCEL_TRIES = 3  # rounds of cancelling the readers in the way before the night gives up


@dataclass(frozen=True)
class Reader:
    """A session holding a lock on a table of the schemas a publish replaces."""

    pid: int
    user: str
    application: str
    state: str
    since: str
    query: str

    def describe(self) -> str:
        app = f" ({self.application})" if self.application else ""
        return f"pid {self.pid}, user {self.user}{app}, {self.state} since {self.since}: {self.query[:80]!r}"

    def stop(self, conn: psycopg.Connection) -> None:
        """Cancel its query; a session idle in a transaction has none running, and is ended instead."""
        stop = "pg_terminate_backend" if self.state.startswith("idle in transaction") else "pg_cancel_backend"
        conn.execute(sql.SQL("select {}(%s)").format(sql.Identifier(stop)), (self.pid,))


def _readers_in_the_way(conn: psycopg.Connection, schemas: tuple[str, ...]) -> list[Reader]:
    names = [n for s in schemas for n in (s, previous(s))]
    rows = conn.execute(
        "select distinct a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), coalesce(a.state, ''), "
        "to_char(coalesce(a.query_start, a.xact_start) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC'), "
        "coalesce(a.query, '') from pg_locks l "
        "join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace "
        "join pg_stat_activity a on a.pid = l.pid "
        "where n.nspname = any(%s) and l.pid <> pg_backend_pid() and l.granted order by a.pid",
        (names,),
    ).fetchall()
    return [Reader(*row) for row in rows]


def _swap(conn: psycopg.Connection, schemas: tuple[str, ...], lock_timeout: str) -> int:
    """One try of the swap, in one transaction; the count of published tables."""
    with conn.transaction():
        conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(lock_timeout)))
        ensure_bi_reader(conn)
        for schema in schemas:
            published, cand, prev = (sql.Identifier(x) for x in (schema, candidate(schema), previous(schema)))
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(prev))
            if _schema_exists(conn, schema):
                conn.execute(sql.SQL("alter schema {} rename to {}").format(published, prev))
                conn.execute(sql.SQL("revoke all on schema {} from {}").format(prev, sql.Identifier(BI_READER)))
            conn.execute(sql.SQL("alter schema {} rename to {}").format(cand, published))
        grant_bi_reader(conn, schemas)
        return conn.execute("select count(*) from pg_tables where schemaname = any(%s)", (list(schemas),)).fetchone()[0]  # type: ignore[index]
