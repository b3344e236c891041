"""The physical line a CSV record starts on, where a quoted value spans lines: COPY numbers
records, an editor lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.discover import DropFile
from b2b_pipeline.filedrop.ledger import FileLoad
from b2b_pipeline.filedrop.reader import chunks

log = logging.getLogger(__name__)

LINE_SHIFT = sql.Identifier("_b2b_line_shift")


def renumber_lines(
    conn: psycopg.Connection, load: FileLoad, table: sql.Identifier, records: int, rows: sql.Composable
) -> None:
    """Give the `records` CSV records just COPYed into `table` (its `rows`) the physical line they
    start on, when a quoted value spans lines.

    Counting the content's lines costs next to nothing while the bytes stream by; only a file
    with more lines than its header and records (a quoted newline) is read again, in bounded
    memory, for the records after which the line runs ahead of the record, each such step
    (the record it starts at, by its COPY number, and how far ahead) a row of a temporary
    table; one UPDATE then moves the records from the first step on.
    """
    if load.source.lines is None or load.source.lines <= records + 1:
        return
    conn.execute(
        sql.SQL("create temp table {} (from_line bigint primary key, shift bigint not null) on commit drop").format(
            LINE_SHIFT
        )
    )
    with conn.cursor() as cur, cur.copy(sql.SQL("copy {} from stdin").format(LINE_SHIFT)) as copy:
        for step in _line_shifts(load.file):
            copy.write_row(step)
    moved = conn.execute(
        sql.SQL(
            "update {t} r set _line = r._line + (select s.shift from {s} s where s.from_line <= r._line "
            "order by s.from_line desc limit 1) where {rows} and r._line >= (select min(from_line) from {s})"
        ).format(t=table, s=LINE_SHIFT, rows=rows)
    ).rowcount
    conn.execute(sql.SQL("drop table {}").format(LINE_SHIFT))
    log.info("%s: a quoted value spans lines; %s records renumbered by physical line", load.file.relpath, moved)


def _line_shifts(f: DropFile) -> Iterator[tuple[int, int]]:
    """(COPY's number of a record, how many lines its first line lies after it) at each record where
    that changes, the header being record 1: a record ends at a newline outside double quotes
    (a doubled quote inside a quoted value counts twice, so the parity of quotes tells)."""
    record, shift, quoted, rest = 0, 0, False, b""
    line = 0
    for chunk, _done in chunks(f.path, f.compressed):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            line += 1
            if not quoted:
                record += 1
                if line - record != shift:
                    shift = line - record
                    yield record, shift
            if part.count(b'"') & 1:
                quoted = not quoted
