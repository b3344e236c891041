"""A hand-made raw layer (docs/raw-layer.md) for the transform tests: rows landed without the loader.

The tables are created by the loader's own DDL (`ensure_raw_schema`), so their layout is the real
one; rows are written as the loader writes them: every contract column as text, `_file_id` and
`_line` on the row, and one ledger row per file in `raw_files.file_loads` (batch, path, folder date).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.schema import ensure_raw_schema
from b2b_pipeline.filedrop.spec import ENTITIES, Entity


def create_raw_tables(conn: psycopg.Connection) -> None:
    """Create the raw layer (schema raw_files, the ledger and one empty table per entity)."""
    ensure_raw_schema(conn)


class RawWriter:
    """Appends rows to the raw tables as a load batch would: one ledger row per file, lines from 2."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.batch_id: int | None = None

    def new_batch(self) -> int:
        """Start a new load batch and return its id."""
        row = self.conn.execute(
            "insert into raw_files.load_batches (source_dir) values ('tests') returning batch_id"
        ).fetchone()
        assert row is not None
        self.batch_id = int(row[0])
        return self.batch_id

    def file(
        self,
        entity: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        folder_date: dt.date | str | None = None,
    ) -> int:
        """Land the rows of one file of `entity` (values as text; None is NULL); returns its file id."""
        spec = _entity(entity)
        if self.batch_id is None:
            self.new_batch()
        rows = list(rows)
        names = list(spec.column_names)
        for row in rows:
            unknown = set(row) - set(names)
            if unknown:
                raise KeyError(f"{entity}: unknown columns {sorted(unknown)}")
        path = f"{spec.system}/{folder_date}/{spec.name}.csv" if folder_date else f"{spec.system}/{spec.name}.csv"
        digest = hashlib.sha256(json.dumps([path, rows], default=str).encode()).hexdigest()
        file_row = self.conn.execute(
            "insert into raw_files.file_loads (batch_id, file, system, entity, folder_date, content_sha256, "
            "bytes, format, delimiter, rows_loaded, rows_quarantined) "
            "values (%s, %s, %s, %s, %s, %s, 0, 'csv', ',', %s, 0) returning file_id",
            (self.batch_id, path, spec.system, spec.name, folder_date, digest, len(rows)),
        ).fetchone()
        assert file_row is not None
        file_id = int(file_row[0])
        query = sql.SQL("insert into {}.{} ({}, _file_id, _line) values ({}, %s, %s)").format(
            sql.Identifier("raw_files"),
            sql.Identifier(spec.name),
            sql.SQL(", ").join(sql.Identifier(n) for n in names),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
        )
        for line, row in enumerate(rows, start=2):
            values = [None if row.get(n) is None else str(row[n]) for n in names]
            self.conn.execute(query, [*values, file_id, line])
        return file_id


def _entity(name: str) -> Entity:
    for entity in ENTITIES:
        if entity.name == name:
            return entity
    raise KeyError(name)
