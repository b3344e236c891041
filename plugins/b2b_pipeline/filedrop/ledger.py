"""The loader's bookkeeping in `raw_files`: the load batches, the ledger of loaded files
(`file_loads`, which also tells a file loaded before) and the refused files (`file_refusals`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psycopg

from b2b_pipeline.filedrop.discover import DropFile
from b2b_pipeline.filedrop.reader import CsvHeader
from b2b_pipeline.filedrop.spec import Entity
from b2b_pipeline.filedrop.stream import Source


@dataclass
class FileLoad:
    """One file being loaded, inside its transaction."""

    batch_id: int
    file_id: int
    file: DropFile
    entity: Entity
    source: Source
    stat: os.stat_result  # of the file, taken before it was read
    header: CsvHeader | None
    registered: tuple[int, int] | None = None  # (loaded, quarantined) as written to the ledger


class PriorLoad(NamedTuple):
    """A file the ledger holds: what tells whether a file of the drop is that file, or has its content."""

    content_sha256: str
    file: str
    batch_id: int
    file_mtime_ns: int | None
    file_ctime_ns: int | None


def open_batch(conn: psycopg.Connection, source_dir: Path) -> int:
    """Start a load batch of the drop at `source_dir`; its id."""
    return conn.execute(
        "insert into raw_files.load_batches (source_dir) values (%s) returning batch_id",
        (str(source_dir),),
    ).fetchone()[0]  # type: ignore[index]


def finish_batch(
    conn: psycopg.Connection,
    batch_id: int,
    *,
    files_loaded: int,
    files_skipped: int,
    files_refused: int,
    rows_loaded: int,
    rows_quarantined: int,
) -> None:
    """Record the end of a load batch and what it did."""
    conn.execute(
        "update raw_files.load_batches set finished_at = clock_timestamp(), files_loaded = %s, "
        "files_skipped = %s, files_refused = %s, rows_loaded = %s, rows_quarantined = %s "
        "where batch_id = %s",
        (files_loaded, files_skipped, files_refused, rows_loaded, rows_quarantined, batch_id),
    )


def loads_of_size(conn: psycopg.Connection, entity: str, size: int) -> list[PriorLoad]:
    """The files of `entity` loaded before with `size` bytes: only they can hold the same content."""
    return [
        PriorLoad(*row)
        for row in conn.execute(
            "select content_sha256, file, batch_id, file_mtime_ns, file_ctime_ns from raw_files.file_loads "
            "where entity = %s and bytes = %s",
            (entity, size),
        ).fetchall()
    ]


def record_refusal(conn: psycopg.Connection, batch_id: int, relpath: str, reason: str) -> None:
    """Record a file refused whole, and why."""
    conn.execute(
        "insert into raw_files.file_refusals (batch_id, file, reason) values (%s, %s, %s)",
        (batch_id, relpath, reason),
    )


def register(conn: psycopg.Connection, load: FileLoad, loaded: int) -> None:
    """Record the file in the ledger (before any of its rows goes to the quarantine, which refers to it)."""
    conn.execute(
        "insert into raw_files.file_loads (file_id, batch_id, file, system, entity, folder_date, content_sha256, "
        "bytes, format, delimiter, rows_loaded, rows_quarantined, file_mtime_ns, file_ctime_ns) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s)",
        (
            load.file_id,
            load.batch_id,
            load.file.relpath,
            load.file.system,
            load.entity.name,
            load.file.folder_date,
            load.source.content_sha256(),
            load.stat.st_size,
            load.file.fmt,
            load.header.delimiter if load.header else None,
            loaded,
            load.stat.st_mtime_ns,
            load.stat.st_ctime_ns,
        ),
    )
    load.registered = (loaded, 0)


def record_rows(conn: psycopg.Connection, load: FileLoad, loaded: int, quarantined: int) -> None:
    """Bring the ledger's row counts of the file to (`loaded`, `quarantined`), when `register` wrote others."""
    if load.registered != (loaded, quarantined):
        conn.execute(
            "update raw_files.file_loads set rows_loaded = %s, rows_quarantined = %s, loaded_at = clock_timestamp() "
            "where file_id = %s",
            (loaded, quarantined, load.file_id),
        )
