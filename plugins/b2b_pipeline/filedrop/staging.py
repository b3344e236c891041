"""Rows that reach the raw table through a temporary table rather than straight by COPY: a CSV
with columns the contract does not name or with ragged rows, JSON Lines with lines that are not
JSON objects. The rows that cannot be read at all go from there to the quarantine, the others
into the raw table.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.ledger import FileLoad, register
from b2b_pipeline.filedrop.quarantine import quarantine_invalid
from b2b_pipeline.filedrop.schema import entity_table

# the temporary table a file's rows are COPYed into on their way to the raw table
INCOMING = sql.Identifier("_b2b_incoming")


def move_incoming(
    conn: psycopg.Connection, load: FileLoad, rows: sql.Composable, decimal_comma: bool
) -> tuple[int, int]:
    """Move the rows of a temporary relation: the unreadable ones to the quarantine, the others
    into the raw table, then those of them that break a rule to the quarantine; (loaded, quarantined).

    `rows` selects `_line`, `_problem` (why the row could not be read at all, else NULL),
    `_raw_row` (jsonb of an unreadable row), every contract column as text, and `_extra`.
    """
    entity = load.entity
    register(conn, load, 0)
    unreadable = conn.execute(
        sql.SQL(
            "insert into raw_files.quarantine (batch_id, file_id, file, line, entity, reason, raw_row) "
            "select %s, %s, %s, _line, %s, _problem, _raw_row from ({}) r where _problem is not null"
        ).format(rows),
        (load.batch_id, load.file_id, load.file.relpath, entity.name),
    ).rowcount
    columns = sql.SQL(", ").join(map(sql.Identifier, entity.column_names))
    moved = conn.execute(
        sql.SQL(
            "insert into {} ({}, _file_id, _line, _extra) select {}, %s, _line, _extra from ({}) r "
            "where _problem is null"
        ).format(entity_table(entity), columns, columns, rows),
        (load.file_id,),
    ).rowcount
    invalid = quarantine_invalid(conn, load, decimal_comma)
    return moved - invalid, unreadable + invalid
