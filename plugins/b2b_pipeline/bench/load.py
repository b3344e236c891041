"""The load benchmark: the file-drop loader against plain COPY of the same files, file by file.

Plain COPY is the ceiling: the file's bytes streamed by psycopg into a table of
text columns shaped like its header (JSON Lines: one text column per line),
with no validation, no ledger and no quarantine. The loader does all of that;
its throughput is reported as a share of plain COPY's, per file, per format and
for the whole drop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.discover import DropFile, discover
from b2b_pipeline.filedrop.loader import JSONL_COPY_OPTIONS, load_file
from b2b_pipeline.filedrop.reader import chunks, read_csv_header
from b2b_pipeline.filedrop.schema import ensure_raw_schema
from b2b_pipeline.warehouse import connect, with_database


@dataclass(frozen=True)
class FileTiming:
    """Rows and seconds of both ways of loading one file."""

    file: str
    format: str
    bytes: int
    rows: int
    plain_seconds: float
    loader_seconds: float

    @property
    def ratio(self) -> float:
        """Loader throughput as a share of plain COPY's."""
        return self.plain_seconds / self.loader_seconds if self.loader_seconds else 0.0


def summarize(timings: list[FileTiming]) -> dict[str, Any]:
    """Totals over files: rows, seconds, rows per second and the ratio, overall and per format."""

    def total(items: list[FileTiming]) -> dict[str, Any]:
        rows = sum(t.rows for t in items)
        plain = sum(t.plain_seconds for t in items)
        loader = sum(t.loader_seconds for t in items)
        return {
            "files": len(items),
            "rows": rows,
            "bytes": sum(t.bytes for t in items),
            "plain_copy_seconds": round(plain, 3),
            "loader_seconds": round(loader, 3),
            "plain_rows_per_second": round(rows / plain) if plain else None,
            "loader_rows_per_second": round(rows / loader) if loader else None,
            "ratio": round(plain / loader, 3) if loader else None,
        }

    return {
        "all": total(timings),
        "by_format": {
            fmt: total([t for t in timings if t.format == fmt]) for fmt in sorted({t.format for t in timings})
        },
        "files": [
            {
                "file": t.file,
                "format": t.format,
                "rows": t.rows,
                "plain_copy_seconds": round(t.plain_seconds, 3),
                "loader_seconds": round(t.loader_seconds, 3),
                "ratio": round(t.ratio, 3),
            }
            for t in timings
        ],
    }


@contextmanager
def scratch_database(admin_dsn: str) -> Iterator[str]:
    """A fresh database on the server of `admin_dsn`, dropped afterwards."""
    name = f"b2b_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def plain_copy(conn: psycopg.Connection, f: DropFile, table: str) -> tuple[int, float]:
    """COPY one file into a fresh table of text columns, nothing else; (rows, seconds)."""
    ident = sql.Identifier(table)
    if f.fmt == "csv":
        header = read_csv_header(f.path, f.compressed)
        columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header.columns)
        options = sql.SQL("(format csv, header true, delimiter {})").format(sql.Literal(header.delimiter))
    else:
        columns = sql.SQL("doc text")
        options = JSONL_COPY_OPTIONS
    conn.execute(sql.SQL("create table {} ({})").format(ident, columns))
    conn.commit()
    started = time.perf_counter()
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("copy {} from stdin {}").format(ident, options)) as copy:
            for chunk, _ in chunks(f.path, f.compressed):
                copy.write(chunk)
        rows = cur.rowcount
    conn.commit()
    return rows, time.perf_counter() - started


def benchmark_load(admin_dsn: str, drop: Path) -> list[FileTiming]:
    """Each file of the drop: plain COPY into one fresh database, the loader into another."""
    files = [f for f in discover(drop).files if f.problem is None]
    timings: list[FileTiming] = []
    with (
        scratch_database(admin_dsn) as plain_dsn,
        scratch_database(admin_dsn) as loader_dsn,
        connect(plain_dsn) as plain_conn,
        connect(loader_dsn, autocommit=True) as loader_conn,
    ):
        ensure_raw_schema(loader_conn)
        batch_id = loader_conn.execute(
            "insert into raw_files.load_batches (source_dir) values (%s) returning batch_id", (str(drop),)
        ).fetchone()[0]  # type: ignore[index]
        for i, f in enumerate(files):
            rows, plain_seconds = plain_copy(plain_conn, f, f"plain_{i}")
            started = time.perf_counter()
            result = load_file(loader_conn, batch_id, f, None)
            loader_seconds = time.perf_counter() - started
            if result.rows_loaded + result.rows_quarantined != rows:
                raise RuntimeError(
                    f"{f.relpath}: the loader took {result.rows_loaded + result.rows_quarantined} rows, "
                    f"plain COPY {rows}"
                )
            timings.append(
                FileTiming(f.relpath, f.fmt or "", f.path.stat().st_size, rows, plain_seconds, loader_seconds)
            )
    return timings
