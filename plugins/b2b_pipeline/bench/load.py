"""The load benchmark: the file-drop loader against plain COPY of the same files.

Plain COPY is the ceiling: each file's bytes streamed by psycopg into a table of
text columns shaped like its header (JSON Lines: one text column), with no
validation, no ledger and no quarantine. The loader does all of that; its
throughput is reported as a share of plain COPY's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from b2b_pipeline.filedrop.discover import discover
from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.filedrop.reader import chunks, read_csv_header
from b2b_pipeline.warehouse import with_database


@dataclass(frozen=True)
class LoadBenchmark:
    """Rows and seconds of both ways of loading one drop."""

    files: int
    bytes: int
    rows: int
    plain_copy_seconds: float
    loader_seconds: float

    @property
    def plain_rows_per_second(self) -> float:
        return self.rows / self.plain_copy_seconds

    @property
    def loader_rows_per_second(self) -> float:
        return self.rows / self.loader_seconds

    @property
    def ratio(self) -> float:
        """Loader throughput as a share of plain COPY's."""
        return self.plain_copy_seconds / self.loader_seconds

    def as_dict(self) -> dict[str, float]:
        return {
            **asdict(self),
            "plain_rows_per_second": round(self.plain_rows_per_second),
            "loader_rows_per_second": round(self.loader_rows_per_second),
            "ratio": round(self.ratio, 3),
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


def plain_copy(dsn: str, drop: Path) -> tuple[int, float]:
    """COPY every file of the drop into text tables, nothing else; (rows, seconds)."""
    found = discover(drop)
    rows = 0
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for i, f in enumerate(found.files):
            table = sql.Identifier(f"plain_{i}")
            if f.fmt == "csv":
                header = read_csv_header(f.path, f.compressed)
                columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header.columns)
                options = sql.SQL("(format csv, header true, delimiter {})").format(sql.Literal(header.delimiter))
            else:
                columns = sql.SQL("doc text")
                options = sql.SQL("(format csv, delimiter E'\\x02', quote E'\\x01')")
            conn.execute(sql.SQL("create table {} ({})").format(table, columns))
            with conn.cursor() as cur:
                with cur.copy(sql.SQL("copy {} from stdin {}").format(table, options)) as copy:
                    for chunk, _ in chunks(f.path, f.compressed):
                        copy.write(chunk)
                rows += cur.rowcount
            conn.commit()
        return rows, time.perf_counter() - started


def benchmark_load(admin_dsn: str, drop: Path) -> LoadBenchmark:
    """Plain COPY of the drop, then the loader, each into its own fresh database."""
    found = discover(drop)
    size = sum(f.path.stat().st_size for f in found.files)
    with scratch_database(admin_dsn) as dsn:
        rows, plain_seconds = plain_copy(dsn, drop)
    with scratch_database(admin_dsn) as dsn:
        started = time.perf_counter()
        report = load_drop(dsn, drop)
        loader_seconds = time.perf_counter() - started
    if report.rows_loaded + report.rows_quarantined != rows:
        raise RuntimeError(
            f"the loader took {report.rows_loaded + report.rows_quarantined} rows, plain COPY {rows}: "
            "they read different files"
        )
    return LoadBenchmark(
        files=len(found.files),
        bytes=size,
        rows=rows,
        plain_copy_seconds=plain_seconds,
        loader_seconds=loader_seconds,
    )
