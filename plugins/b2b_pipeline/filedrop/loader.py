"""Extract & load of a file drop into `raw_files`, by streaming COPY and set-based SQL.

Per file, in one transaction:
1. skip it when a file of the same entity with the same content (SHA-256) was loaded
   before. A file the ledger holds at the same path, with the same size and the same
   modification and status-change times, is that file, untouched: it is skipped unread
   (a night's cost must not grow with the history the drop keeps). Otherwise the file
   is hashed up front only when the ledger holds a file of its entity with the same
   size (identical content has identical size); else the hash is taken from the bytes
   on their way into COPY (`stream`), so the file is read once;
2. COPY its rows into `raw_files.<entity>`, straight or through a temporary table
   (`staging`): a CSV by `csv_copy`, JSON Lines by `jsonl_copy`;
3. record the file in the ledger `raw_files.file_loads` (`ledger`);
4. move its rows that break a rule of docs/sources.md, with all their reasons, to
   `raw_files.quarantine` (`quarantine`).
A file that cannot be read as its entity at all is refused whole and recorded in
`raw_files.file_refusals`; nothing of it loads. `load_drop` loads the files of
different entities side by side on a few connections. See docs/raw-layer.md.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import errors, sql

from b2b_pipeline.filedrop.csv_copy import load_csv
from b2b_pipeline.filedrop.discover import DropFile, discover
from b2b_pipeline.filedrop.jsonl_copy import load_jsonl
from b2b_pipeline.filedrop.ledger import (
    FileLoad,
    finish_batch,
    loads_of_size,
    open_batch,
    record_refusal,
    record_rows,
)
from b2b_pipeline.filedrop.reader import FileRefused, NulByte, check_start, nul_byte_reason, read_csv_header
from b2b_pipeline.filedrop.schema import FILE_ID_SETTING, ensure_raw_schema, line_sequence
from b2b_pipeline.filedrop.stream import Source
from b2b_pipeline.warehouse import connect

__all__ = ["DEFAULT_WORKERS", "FileResult", "LoadReport", "Progress", "load_drop", "load_file"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (file, stored bytes done, stored bytes total)

# connections loading files side by side in `load_drop`: one entity per connection at a time
DEFAULT_WORKERS = 2


@dataclass
class FileResult:
    """What happened to one file of the drop."""

    file: str
    entity: str | None
    status: str  # "loaded", "skipped" or "refused"
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    file_id: int | None = None


@dataclass
class LoadReport:
    """What one load batch did."""

    batch_id: int
    source_dir: Path
    files: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def by_entity(self) -> dict[str, tuple[int, int]]:
        """Rows loaded and quarantined per entity, over the files loaded in this batch."""
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for f in self.files:
            if f.entity and f.status == "loaded":
                totals[f.entity][0] += f.rows_loaded
                totals[f.entity][1] += f.rows_quarantined
        return {k: (v[0], v[1]) for k, v in sorted(totals.items())}

    @property
    def refusals(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "refused"]


def load_drop(
    dsn: str,
    source_dir: Path,
    *,
    systems: tuple[str, ...] | None = None,
    entities: tuple[str, ...] | None = None,
    progress: Progress | None = None,
    workers: int = DEFAULT_WORKERS,
) -> LoadReport:
    """Load every new file of the drop at `source_dir` (only `systems`, when given) as one batch.

    `entities` (names such as "fx_rates") narrows the batch to the files of those entities: a
    night whose billing comes from an API still reads the drop's fx_rates (`spec.ALWAYS_FROM_FILES`),
    and the drop's other files of that system, and its unrecognised ones, are then none of its business.

    Up to `workers` connections load files side by side, one entity per connection at a
    time: the files of an entity load one after another in drop order, each in its own
    transaction, so `_file_id` still increases in load order within every entity.
    """
    source_dir = Path(source_dir).resolve()
    found = discover(source_dir)
    with connect(dsn, autocommit=True) as conn:
        ensure_raw_schema(conn)
        batch_id = open_batch(conn, source_dir)
        report = LoadReport(batch_id=batch_id, source_dir=source_dir)
        for relpath, why in found.ignored:
            if entities is None and (systems is None or relpath.split("/", 1)[0] in systems):
                report.files.append(_refuse(conn, batch_id, relpath, None, why))
        files = [
            f
            for f in found.files
            if (systems is None or f.system in systems)
            and (entities is None or (f.entity is not None and f.entity.name in entities))
        ]
        report.files.extend(_load_files(dsn, conn, batch_id, files, progress, workers))
        finish_batch(
            conn,
            batch_id,
            files_loaded=report.count("loaded"),
            files_skipped=report.count("skipped"),
            files_refused=report.count("refused"),
            rows_loaded=report.rows_loaded,
            rows_quarantined=report.rows_quarantined,
        )
    log.info(
        "batch %s: %s files loaded, %s skipped, %s refused; %s rows loaded, %s quarantined",
        batch_id,
        report.count("loaded"),
        report.count("skipped"),
        report.count("refused"),
        report.rows_loaded,
        report.rows_quarantined,
    )
    return report


def _load_files(
    dsn: str,
    conn: psycopg.Connection,
    batch_id: int,
    files: list[DropFile],
    progress: Progress | None,
    workers: int,
) -> list[FileResult]:
    """The result of loading each file, in the order of `files`.

    The files are grouped by entity, keeping their order; with more than one worker and
    more than one entity, worker threads on connections of their own take the groups,
    largest first, each group whole (the advisory lock of `_load_in_transaction` would
    serialise two loads of one entity anyway).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(files):
        groups[f.entity.name if f.entity else ""].append(i)
    if workers <= 1 or len(groups) <= 1:
        return [load_file(conn, batch_id, f, progress) for f in files]

    def size(group: list[int]) -> int:
        return sum(files[i].path.stat().st_size for i in group)

    pending = sorted(groups.values(), key=size, reverse=True)
    results: list[FileResult | None] = [None] * len(files)
    lock = threading.Lock()
    failed = threading.Event()

    def report(file: str, done: int, total: int) -> None:
        assert progress is not None
        with lock:  # one progress display, several threads
            progress(file, done, total)

    def work() -> None:
        with connect(dsn, autocommit=True) as own:
            while not failed.is_set():
                with lock:
                    if not pending:
                        return
                    group = pending.pop(0)
                try:
                    for i in group:
                        results[i] = load_file(own, batch_id, files[i], report if progress else None)
                except BaseException:
                    failed.set()  # the other workers finish their current group and stop
                    raise

    with ThreadPoolExecutor(max_workers=min(workers, len(groups)), thread_name_prefix="b2b-load") as pool:
        futures = [pool.submit(work) for _ in range(min(workers, len(groups)))]
        for future in futures:
            future.result()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def load_file(conn: psycopg.Connection, batch_id: int, f: DropFile, progress: Progress | None) -> FileResult:
    """Load one file in its own transaction; refuse it whole when it cannot be read as its entity."""
    entity_name = f.entity.name if f.entity else None
    if f.problem:
        return _refuse(conn, batch_id, f.relpath, entity_name, f.problem)
    assert f.entity is not None and f.fmt is not None
    try:
        stat = f.path.stat()  # before reading: a change while the file is read shows up as a change next time
    except OSError as exc:  # gone since the drop was listed, or a link that went dangling meanwhile
        return _refuse(conn, batch_id, f.relpath, entity_name, f"cannot be read: {exc.strerror or exc}")
    size = stat.st_size
    same_size = loads_of_size(conn, f.entity.name, size)
    identity = (f.relpath, stat.st_mtime_ns, stat.st_ctime_ns)
    unchanged = next((p for p in same_size if (p.file, p.file_mtime_ns, p.file_ctime_ns) == identity), None)
    if unchanged:  # the very file loaded before, untouched since: no need to read it again
        log.info("%s: skipped, loaded before (batch %s) and unchanged since", f.relpath, unchanged.batch_id)
        return FileResult(
            f.relpath, entity_name, "skipped", reason=f"loaded before (batch {unchanged.batch_id}), unchanged"
        )
    source = Source(f, (lambda done: progress(f.relpath, done, size)) if progress else (lambda done: None))
    if same_size:  # only then can its content have been loaded before: hash it first
        sha = source.content_sha256()
        previous = next((p for p in same_size if p.content_sha256 == sha), None)
        if previous:
            log.info(
                "%s: skipped, its content was loaded before as %s (batch %s)",
                f.relpath,
                previous.file,
                previous.batch_id,
            )
            return FileResult(
                f.relpath,
                entity_name,
                "skipped",
                reason=f"content loaded before as {previous.file} (batch {previous.batch_id})",
            )
    try:
        with conn.transaction():
            result = _load_in_transaction(conn, batch_id, f, source, stat)
    except NulByte as exc:  # say where: the server's message names no line of the file
        reason = nul_byte_reason(f.path, f.compressed) or str(exc)
        return _refuse(conn, batch_id, f.relpath, entity_name, reason)
    except FileRefused as exc:
        return _refuse(conn, batch_id, f.relpath, entity_name, str(exc))
    except errors.UniqueViolation:  # a concurrent load took the same content first
        return FileResult(f.relpath, entity_name, "skipped", reason="content loaded concurrently")
    log.info("%s: %s rows loaded, %s quarantined", f.relpath, result.rows_loaded, result.rows_quarantined)
    return result


def _refuse(conn: psycopg.Connection, batch_id: int, relpath: str, entity: str | None, reason: str) -> FileResult:
    """Refuse a file whole: logged and recorded in `raw_files.file_refusals`; its result."""
    log.warning("%s: refused: %s", relpath, reason)
    record_refusal(conn, batch_id, relpath, reason)
    return FileResult(relpath, entity, "refused", reason=reason)


def _load_in_transaction(
    conn: psycopg.Connection, batch_id: int, f: DropFile, source: Source, stat: os.stat_result
) -> FileResult:
    """Load a file that is not loaded yet, inside the caller's transaction; a file that cannot
    be read as its entity raises `FileRefused`."""
    entity = f.entity
    assert entity is not None and f.fmt is not None
    # one load of an entity at a time: the line sequence is per entity. JIT compiling the
    # validation expressions costs more than it saves on a file's rows.
    conn.execute(
        "select pg_advisory_xact_lock(hashtext(%s)), set_config('jit', 'off', true)", (f"raw_files.{entity.name}",)
    )
    header = read_csv_header(f.path, f.compressed) if f.fmt == "csv" else None
    if header is None:
        check_start(f.path, f.compressed)  # a UTF-16 file by its byte-order mark (the CSV header checks its own)
    if header:
        missing = [c for c in entity.required_names if c not in header.columns]
        if missing:
            raise FileRefused(f"line 1: required column(s) missing from the header: {', '.join(missing)}")
    # the file's id, which `_file_id` of the raw tables defaults to for the rest of the transaction
    file_id = int(
        conn.execute(
            sql.SQL("select set_config({}, nextval('raw_files.file_id_seq')::text, true), setval({}, 1, true)").format(
                sql.Literal(FILE_ID_SETTING), sql.Literal(line_sequence(entity).as_string(conn))
            )
        ).fetchone()[0]  # type: ignore[index]
    )
    load = FileLoad(batch_id, file_id, f, entity, source, stat, header)
    loaded, quarantined = load_jsonl(conn, load) if header is None else load_csv(conn, load, header)
    record_rows(conn, load, loaded, quarantined)
    return FileResult(
        f.relpath, entity.name, "loaded", rows_loaded=loaded, rows_quarantined=quarantined, file_id=file_id
    )
