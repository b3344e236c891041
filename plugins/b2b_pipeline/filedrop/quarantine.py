"""The rows of a file in its raw table that break a rule of docs/sources.md, moved to `raw_files.quarantine`
with every reason they break.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.ledger import FileLoad, register
from b2b_pipeline.filedrop.schema import entity_table
from b2b_pipeline.filedrop.validate import entity_rules, failure_condition, reason_expression, screen_condition


def register_and_quarantine(
    conn: psycopg.Connection, load: FileLoad, copied: int, decimal_comma: bool
) -> tuple[int, int]:
    """Record the file, whose `copied` rows are in its raw table, in the ledger, then move those
    of its rows that break a rule to the quarantine; (loaded, quarantined)."""
    register(conn, load, copied)
    invalid = quarantine_invalid(conn, load, decimal_comma)
    return copied - invalid, invalid


def quarantine_invalid(conn: psycopg.Connection, load: FileLoad, decimal_comma: bool) -> int:
    """Move the file's rows in the raw table that break a rule of docs/sources.md to the quarantine,
    with every reason; the number moved.

    Finding them is one read-only query with one cheap boolean expression a row, which
    PostgreSQL may run with parallel workers (a DELETE never is); only when it finds rows
    does a DELETE move them, by line, naming every reason. On PostgreSQL 15 the screen
    casts values, and a value that does not cast sends the file to the exact (slower) rules.
    """
    entity = load.entity
    table = entity_table(entity)
    rules = entity_rules(entity, decimal_comma)

    def bad_lines(condition: sql.Composable) -> list[int]:
        query = sql.SQL("select _line from {} where _file_id = {} and {}").format(
            table, sql.Literal(load.file_id), condition
        )
        return [row[0] for row in conn.execute(query).fetchall()]

    if conn.info.server_version >= 160000:
        lines = bad_lines(screen_condition(entity, decimal_comma, casts=False))
    else:
        try:
            with conn.transaction():
                lines = bad_lines(screen_condition(entity, decimal_comma, casts=True))
        except psycopg.DataError:
            lines = bad_lines(failure_condition(rules))
    if not lines:
        return 0
    statement = sql.SQL(
        "with bad as (delete from {table} t using unnest({lines}::bigint[]) b (line) "
        "where t._file_id = {file_id} and t._line = b.line returning t.*) "
        "insert into raw_files.quarantine (batch_id, file_id, file, line, entity, reason, raw_row) "
        "select {batch_id}, _file_id, {file}, _line, {entity}, {reason}, "
        "jsonb_strip_nulls(to_jsonb(bad) - '_file_id' - '_line') from bad"
    ).format(
        table=table,
        file_id=sql.Literal(load.file_id),
        batch_id=sql.Literal(load.batch_id),
        file=sql.Literal(load.file.relpath),
        entity=sql.Literal(entity.name),
        reason=reason_expression(rules),
        lines=sql.Literal(lines),  # a literal: the reasons hold `%`, which a query with parameters may not
    )
    return conn.execute(statement).rowcount
