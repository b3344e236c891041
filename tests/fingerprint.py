"""The published state of a schema, to compare before and after a night: shared by the whole-night tests."""

from __future__ import annotations

import psycopg
from psycopg import sql


def fingerprint(dsn: str, schema: str = "marts") -> dict[str, str]:
    """Each table of `schema`: its row count and an md5 of all its rows in a stable order ({} when none)."""
    # the same text and order on any server: timestamps in UTC, rows ordered by bytes (not the collation)
    with psycopg.connect(dsn, options="-c timezone=UTC") as conn:
        tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = %s", (schema,))]
        return {
            table: conn.execute(
                sql.SQL(
                    "select count(*) || ':'"
                    " || coalesce(md5(string_agg(t::text, E'\\n' order by t::text collate \"C\")), '') from {} t"
                ).format(sql.Identifier(schema, table))
            ).fetchone()[0]
            for table in sorted(tables)
        }
