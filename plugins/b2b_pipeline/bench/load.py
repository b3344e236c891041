"""The load benchmark: the file-drop loader against plain COPY of the same files.

Plain COPY is the ceiling: the file's bytes streamed by psycopg into a table of
text columns shaped like its header (JSON Lines: one text column per line, not
parsed as JSON), with no validation, no ledger and no quarantine. The loader does
all of that; its throughput is reported as a share of plain COPY's.

Two figures, measured separately:
- per file (`benchmark_load`, `summarize`): each file by plain COPY, then by
  `load_file` on one connection, one file at a time; totals per format and over
  the drop are sums of these sequential timings;
- whole drop (`benchmark_drop`): the wall-clock time of `load_drop`, which loads
  the files of different entities side by side on several connections, against
  the sum of the per-file plain COPYs (one after another), and, for reference,
  against plain COPY of the files on as many connections side by side.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.discover import DropFile, discover
from b2b_pipeline.filedrop.jsonl_copy import JSONL_COPY_OPTIONS
from b2b_pipeline.filedrop.loader import DEFAULT_WORKERS, load_drop, load_file
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


def _plain_copy_side_by_side(dsn: str, files: list[DropFile], workers: int) -> float:
    """Seconds of plain COPY of `files` on `workers` connections side by side, largest files first."""
    pending = sorted(range(len(files)), key=lambda i: files[i].path.stat().st_size, reverse=True)
    lock = threading.Lock()
    conns = [connect(dsn) for _ in range(workers)]
    try:

        def work(conn: psycopg.Connection) -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    i = pending.pop(0)
                plain_copy(conn, files[i], f"plain_{i}")

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, conns))
        return time.perf_counter() - started
    finally:
        for conn in conns:
            conn.close()


@dataclass(frozen=True)
class DropTiming:
    """Seconds of loading a whole drop: plain COPY file after file, plain COPY side by side, and `load_drop`."""

    files: int
    rows: int
    bytes: int
    workers: int
    plain_seconds: float  # the per-file plain COPYs one after another
    plain_parallel_seconds: float  # plain COPY of the files on `workers` connections side by side
    loader_seconds: float  # wall-clock of load_drop with `workers` connections

    def as_dict(self) -> dict[str, Any]:
        """The timings with the loader's throughput as a share of each plain COPY's."""
        return {
            "files": self.files,
            "rows": self.rows,
            "bytes": self.bytes,
            "workers": self.workers,
            "plain_copy_seconds": round(self.plain_seconds, 3),
            "plain_copy_parallel_seconds": round(self.plain_parallel_seconds, 3),
            "loader_seconds": round(self.loader_seconds, 3),
            "ratio": round(self.plain_seconds / self.loader_seconds, 3) if self.loader_seconds else None,
            "ratio_to_parallel_copy": (
                round(self.plain_parallel_seconds / self.loader_seconds, 3) if self.loader_seconds else None
            ),
        }


def benchmark_drop(admin_dsn: str, drop: Path, workers: int = DEFAULT_WORKERS) -> DropTiming:
    """The whole drop: plain COPY of each file (sequentially, then on `workers` connections) into
    fresh databases, and `load_drop` with `workers` connections into another (its raw schema
    created beforehand, untimed, as `benchmark_load` does)."""
    files = [f for f in discover(drop).files if f.problem is None]
    with scratch_database(admin_dsn) as plain_dsn, connect(plain_dsn) as plain_conn:
        copied = [plain_copy(plain_conn, f, f"plain_{i}") for i, f in enumerate(files)]
    rows = sum(r for r, _ in copied)
    with scratch_database(admin_dsn) as parallel_dsn:
        plain_parallel = _plain_copy_side_by_side(parallel_dsn, files, workers)
    with scratch_database(admin_dsn) as loader_dsn:
        with connect(loader_dsn, autocommit=True) as conn:
            ensure_raw_schema(conn)
        started = time.perf_counter()
        report = load_drop(loader_dsn, drop, workers=workers)
        loader_seconds = time.perf_counter() - started
    if report.rows_loaded + report.rows_quarantined != rows:
        raise RuntimeError(f"the loader took {report.rows_loaded + report.rows_quarantined} rows, plain COPY {rows}")
    return DropTiming(
        files=len(files),
        rows=rows,
        bytes=sum(f.path.stat().st_size for f in files),
        workers=workers,
        plain_seconds=sum(s for _, s in copied),
        plain_parallel_seconds=plain_parallel,
        loader_seconds=loader_seconds,
    )
