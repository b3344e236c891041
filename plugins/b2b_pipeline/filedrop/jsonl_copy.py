"""A JSON Lines file into its raw table, by the cheapest of three paths that reads it: transcoded to
CSV on the client (`jsonl`), parsed into `jsonb` by COPY, or each line checked in SQL.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import errors, sql

from b2b_pipeline.filedrop import jsonl
from b2b_pipeline.filedrop.ledger import FileLoad
from b2b_pipeline.filedrop.quarantine import register_and_quarantine
from b2b_pipeline.filedrop.reader import FileRefused
from b2b_pipeline.filedrop.schema import entity_table, line_sequence
from b2b_pipeline.filedrop.spec import Entity
from b2b_pipeline.filedrop.staging import INCOMING, move_incoming
from b2b_pipeline.filedrop.stream import copy_error, copy_options, stream_copy

log = logging.getLogger(__name__)

JSON_LINES = sql.Identifier("_b2b_json_lines")
# COPY options that read each line of a JSON Lines file as one text value, verbatim: CSV with a quote
# and a delimiter that JSON text never holds unescaped
JSONL_COPY_OPTIONS = sql.SQL("(format csv, delimiter E'\\x02', quote E'\\x01')")


class _NotEveryLineAnObject(Exception):
    """A JSON Lines file holds a line that is JSON but not an object: the checking path names it."""


def load_jsonl(conn: psycopg.Connection, load: FileLoad) -> tuple[int, int]:
    """JSON Lines: transcoded to CSV on the client and COPYed straight into the raw table when
    every line is a flat object of contract fields (`jsonl.csv_from_json_lines`), else by SQL."""
    names = load.entity.column_names
    try:
        with conn.transaction():  # a savepoint: anything the client-side path does not handle undoes it
            # `_line` from the line sequence: JSON Lines have no header, the first record is line 1
            conn.execute(
                sql.SQL("select setval({}, 1, false)").format(sql.Literal(line_sequence(load.entity).as_string(conn)))
            )
            copied = stream_copy(
                conn,
                sql.SQL("copy {} ({}) from stdin {}").format(
                    entity_table(load.entity), sql.SQL(", ").join(map(sql.Identifier, names)), copy_options(names)
                ),
                jsonl.csv_from_json_lines(load.source.chunks(), names),
                refuse_bad_data=False,
            )
    except (jsonl.NotTranscodable, psycopg.DataError) as exc:
        log.info("%s: %s; parsing it in SQL", load.file.relpath, exc)
    else:
        return register_and_quarantine(conn, load, copied, False)
    return _load_jsonl_sql(conn, load)


def _load_jsonl_sql(conn: psycopg.Connection, load: FileLoad) -> tuple[int, int]:
    """JSON Lines parsed in SQL, optimistically: COPY parses each line into `jsonb` on its way into
    a temporary table, and one INSERT ... SELECT splits the objects into the raw table's columns.

    A line that is not JSON (COPY fails) or not an object sends the file to `_load_jsonl_checked`.
    """
    entity = load.entity
    names = entity.column_names
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "create temp table {} (_line bigint generated always as identity, _doc jsonb) on commit drop"
                ).format(JSON_LINES)
            )
            copied = stream_copy(
                conn,
                sql.SQL("copy {} (_doc) from stdin {}").format(JSON_LINES, JSONL_COPY_OPTIONS),
                load.source.chunks(),
                refuse_bad_data=False,
            )
            # an empty line is NULL; everything else is a JSON value
            moved = conn.execute(
                sql.SQL(
                    "insert into {} ({}, _file_id, _line, _extra) select {}, %s, _line, "
                    "nullif(_doc - {}::text[], '{{}}'::jsonb) from {} where jsonb_typeof(_doc) = 'object'"
                ).format(
                    entity_table(entity),
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join(sql.SQL("nullif(_doc ->> {}, '')").format(sql.Literal(c)) for c in names),
                    sql.Literal(list(names)),
                    JSON_LINES,
                ),
                (load.file_id,),
            ).rowcount
            if moved != copied:
                values = conn.execute(
                    sql.SQL("select count(*) from {} where _doc is not null").format(JSON_LINES)
                ).fetchone()[0]  # type: ignore[index]
                if values != moved:
                    raise _NotEveryLineAnObject
    except (psycopg.DataError, _NotEveryLineAnObject) as exc:
        log.info(
            "%s: %s; checking it line by line",
            load.file.relpath,
            copy_error(exc) if isinstance(exc, psycopg.Error) else "a line is not a JSON object",
        )
        return _load_jsonl_checked(conn, load)
    return register_and_quarantine(conn, load, moved, False)


def _load_jsonl_checked(conn: psycopg.Connection, load: FileLoad) -> tuple[int, int]:
    """JSON Lines with lines that are not JSON objects: each line COPYed as one text value,
    then checked, parsed and split into columns in SQL; the bad lines go to the quarantine."""
    conn.execute(
        sql.SQL("create temp table {} (_line bigint generated always as identity, _doc text) on commit drop").format(
            INCOMING
        )
    )
    try:
        stream_copy(
            conn, sql.SQL("copy {} (_doc) from stdin {}").format(INCOMING, JSONL_COPY_OPTIONS), load.source.chunks()
        )
    except errors.BadCopyFileFormat as exc:  # a raw control character \x01 or \x02: no JSON text holds one
        raise FileRefused(f"not readable as JSON Lines: {copy_error(exc)}") from exc
    return move_incoming(conn, load, _json_rows(load.entity, INCOMING), False)


def _json_rows(entity: Entity, lines: sql.Identifier) -> sql.Composable:
    """The JSON lines of the table `lines` parsed, in the shape `move_incoming` reads."""
    names = entity.column_names
    contract = sql.SQL(", ").join(
        sql.SQL("nullif(doc ->> {}, '') as {}").format(sql.Literal(c), sql.Identifier(c)) for c in names
    )
    return sql.SQL(
        "select _line, "
        "case when doc is null then 'not valid JSON' when jsonb_typeof(doc) <> 'object' then 'not a JSON object' "
        "end as _problem, "
        "case when doc is null or jsonb_typeof(doc) <> 'object' then jsonb_build_object('line', left(_doc, 10000)) "
        "end as _raw_row, "
        "{}, case when jsonb_typeof(doc) = 'object' then nullif(doc - {}::text[], '{{}}'::jsonb) end as _extra "
        "from (select _line, _doc, "
        "case when coalesce(raw_files.is_valid_input(_doc, 'jsonb'), false) then _doc::jsonb end as doc "
        "from {} where _doc is not null and btrim(_doc) <> '' offset 0) lines"  # offset 0: parse each line once
    ).format(contract, sql.Literal(list(names)), lines)
