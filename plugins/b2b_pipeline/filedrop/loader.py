"""Extract & load of a file drop into `raw_files`, by streaming COPY and set-based SQL.

Per file, in one transaction:
1. skip it when a file of the same entity with the same content (SHA-256) was loaded
   before. A file the ledger holds at the same path, with the same size and the same
   modification and status-change times, is that file, untouched: it is skipped unread
   (a night's cost must not grow with the history the drop keeps). Otherwise the file
   is hashed up front only when the ledger holds a file of its entity with the same
   size (identical content has identical size); else the hash is taken from the bytes
   on their way into COPY, so the file is read once;
2. COPY its rows straight into `raw_files.<entity>`: a CSV whose header names only
   contract columns as it is; JSON Lines transcoded to CSV on the client when every
   line is a flat object of contract fields with string or null values (`jsonl`).
   Everything else goes through a temporary table, from where one INSERT ... SELECT
   moves the rows: other JSON Lines (COPY parses each line into `jsonb`, and a file
   with a line that is not JSON or not an object is checked line by line), CSV with
   columns the contract does not name, CSV with ragged rows;
3. record the file in the ledger `raw_files.file_loads`;
4. one read-only pass finds the file's rows that break a rule of SOURCES.md; only when
   it finds some does one DELETE ... RETURNING move them, with all their reasons, to
   `raw_files.quarantine`.
A file that cannot be read as its entity at all is refused whole and recorded in
`raw_files.file_refusals`; nothing of it loads. `load_drop` loads the files of
different entities side by side on a few connections. See docs/raw-layer.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import errors, sql

from b2b_pipeline.filedrop import jsonl
from b2b_pipeline.filedrop.discover import DropFile, discover
from b2b_pipeline.filedrop.reader import (
    CsvHeader,
    FileRefused,
    NulByte,
    check_start,
    chunks,
    nul_byte_reason,
    open_binary,
    read_ahead,
    read_csv_header,
    sha256_of,
)
from b2b_pipeline.filedrop.schema import FILE_ID_SETTING, ensure_raw_schema, entity_table, line_sequence
from b2b_pipeline.filedrop.spec import Entity
from b2b_pipeline.filedrop.validate import entity_rules, failure_condition, reason_expression, screen_condition
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (file, stored bytes done, stored bytes total)

INCOMING = sql.Identifier("_b2b_incoming")
JSON_LINES = sql.Identifier("_b2b_json_lines")
# COPY options that read each line of a JSON Lines file as one text value, verbatim: CSV with a quote
# and a delimiter that JSON text never holds unescaped
JSONL_COPY_OPTIONS = sql.SQL("(format csv, delimiter E'\\x02', quote E'\\x01')")
COPY_LINE = re.compile(r"line (\d+)")
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
    progress: Progress | None = None,
    workers: int = DEFAULT_WORKERS,
) -> LoadReport:
    """Load every new file of the drop at `source_dir` (only `systems`, when given) as one batch.

    Up to `workers` connections load files side by side, one entity per connection at a
    time: the files of an entity load one after another in drop order, each in its own
    transaction, so `_file_id` still increases in load order within every entity.
    """
    source_dir = Path(source_dir).resolve()
    found = discover(source_dir)
    with connect(dsn, autocommit=True) as conn:
        ensure_raw_schema(conn)
        batch_id = conn.execute(
            "insert into raw_files.load_batches (source_dir) values (%s) returning batch_id",
            (str(source_dir),),
        ).fetchone()[0]  # type: ignore[index]
        report = LoadReport(batch_id=batch_id, source_dir=source_dir)
        for relpath, why in found.ignored:
            if systems is None or relpath.split("/", 1)[0] in systems:
                report.files.append(_refuse(conn, batch_id, relpath, None, why))
        files = [f for f in found.files if systems is None or f.system in systems]
        report.files.extend(_load_files(dsn, conn, batch_id, files, progress, workers))
        conn.execute(
            "update raw_files.load_batches set finished_at = clock_timestamp(), files_loaded = %s, "
            "files_skipped = %s, files_refused = %s, rows_loaded = %s, rows_quarantined = %s "
            "where batch_id = %s",
            (
                report.count("loaded"),
                report.count("skipped"),
                report.count("refused"),
                report.rows_loaded,
                report.rows_quarantined,
                batch_id,
            ),
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


@dataclass
class _Source:
    """A drop file as the loader streams it: its chunks, with progress, and its SHA-256 taken on the way."""

    file: DropFile
    report: Callable[[int], None]
    sha256: str | None = None
    lines: int | None = None  # physical lines of the content (a last line without a newline counts), once streamed

    def chunks(self) -> Iterator[bytes]:
        """The file's content for COPY; the first stream that runs to its end also hashes the file.

        A stream that runs to its end also counts the content's lines (`lines`): when a CSV
        has more lines than records, a quoted value spans lines (see `_renumber_lines`).
        """
        digest = hashlib.sha256() if self.sha256 is None else None
        newlines, last = 0, b"\n"
        for chunk, done in chunks(self.file.path, self.file.compressed, digest):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
            yield chunk
            self.report(done)
        if digest is not None:
            self.sha256 = digest.hexdigest()
        self.lines = newlines + (last != b"\n")

    def content_sha256(self) -> str:
        """The SHA-256 of the stored bytes: from a finished stream, else by reading the file."""
        if self.sha256 is None:
            self.sha256 = sha256_of(self.file.path)
        return self.sha256


@dataclass
class _FileLoad:
    """One file being loaded, inside its transaction."""

    batch_id: int
    file_id: int
    file: DropFile
    entity: Entity
    source: _Source
    stat: os.stat_result  # of the file, taken before it was read
    header: CsvHeader | None
    registered: tuple[int, int] | None = None  # (loaded, quarantined) as written to the ledger


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
    same_size = conn.execute(
        "select content_sha256, file, batch_id, file_mtime_ns, file_ctime_ns from raw_files.file_loads "
        "where entity = %s and bytes = %s",
        (f.entity.name, size),
    ).fetchall()
    identity = (f.relpath, stat.st_mtime_ns, stat.st_ctime_ns)
    unchanged = next((row for row in same_size if (row[1], row[3], row[4]) == identity), None)
    if unchanged:  # the very file loaded before, untouched since: no need to read it again
        log.info("%s: skipped, loaded before (batch %s) and unchanged since", f.relpath, unchanged[2])
        return FileResult(f.relpath, entity_name, "skipped", reason=f"loaded before (batch {unchanged[2]}), unchanged")
    source = _Source(f, (lambda done: progress(f.relpath, done, size)) if progress else (lambda done: None))
    if same_size:  # only then can its content have been loaded before: hash it first
        sha = source.content_sha256()
        previous = next((row for row in same_size if row[0] == sha), None)
        if previous:
            log.info("%s: skipped, its content was loaded before as %s (batch %s)", f.relpath, *previous[1:3])
            return FileResult(
                f.relpath,
                entity_name,
                "skipped",
                reason=f"content loaded before as {previous[1]} (batch {previous[2]})",
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
    log.warning("%s: refused: %s", relpath, reason)
    conn.execute(
        "insert into raw_files.file_refusals (batch_id, file, reason) values (%s, %s, %s)",
        (batch_id, relpath, reason),
    )
    return FileResult(relpath, entity, "refused", reason=reason)


def _load_in_transaction(
    conn: psycopg.Connection, batch_id: int, f: DropFile, source: _Source, stat: os.stat_result
) -> FileResult:
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
    load = _FileLoad(batch_id, file_id, f, entity, source, stat, header)
    if header is None:
        loaded, quarantined = _load_jsonl(conn, load)
    else:
        loaded, quarantined = _load_csv(conn, load, header)
    if load.registered != (loaded, quarantined):
        conn.execute(
            "update raw_files.file_loads set rows_loaded = %s, rows_quarantined = %s, loaded_at = clock_timestamp() "
            "where file_id = %s",
            (loaded, quarantined, file_id),
        )
    return FileResult(
        f.relpath, entity.name, "loaded", rows_loaded=loaded, rows_quarantined=quarantined, file_id=file_id
    )


def _register(conn: psycopg.Connection, load: _FileLoad, loaded: int) -> None:
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


def _load_csv(conn: psycopg.Connection, load: _FileLoad, header: CsvHeader) -> tuple[int, int]:
    """Rows of a CSV loaded and quarantined.

    The fast path COPYs straight into the raw table and then moves the rows that break
    a rule to the quarantine; a file with columns the contract does not name, or with
    ragged rows, goes through a temporary table instead.
    """
    decimal_comma = header.delimiter == ";"
    if all(c in load.entity.column_names for c in header.columns):
        try:
            with conn.transaction():  # a savepoint: a ragged row sends the file to the staged path
                copied = _copy_direct(conn, load, header)
        except errors.BadCopyFileFormat as exc:
            log.info("%s: %s; reading it row by row to quarantine the ragged rows", load.file.relpath, _copy_error(exc))
            return _load_csv_staged(conn, load, header, parse_in_python=True)
        _renumber_lines(conn, load, entity_table(load.entity), copied, sql.SQL("_file_id = {}").format(load.file_id))
        _register(conn, load, copied)
        invalid = _quarantine_invalid(conn, load, decimal_comma)
        return copied - invalid, invalid
    return _load_csv_staged(conn, load, header, parse_in_python=False)


def _copy_error(exc: psycopg.Error) -> str:
    context = exc.diag.context or ""
    match = COPY_LINE.search(context)
    where = f"line {match.group(1)}: " if match else ""
    return f"{where}{exc.diag.message_primary or exc}"


def _copy_options(columns: tuple[str, ...], delimiter: str | None = None) -> sql.Composable:
    """COPY options for CSV whose empty values, quoted or not, are NULL: a file's (`delimiter`,
    with a header) or the client-side path's (`,`, no header)."""
    if delimiter is None:
        return sql.SQL("(format csv, force_null ({}))").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    return sql.SQL("(format csv, header true, delimiter {}, force_null ({}))").format(
        sql.Literal(delimiter), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _stream_copy(
    conn: psycopg.Connection, statement: sql.Composable, data: Iterable[bytes], *, refuse_bad_data: bool = True
) -> int:
    """COPY `data` (the file's bytes, as a rule) through `statement`; the number of rows copied.

    `data` is produced on a thread of its own (`read_ahead`), so that the client's work on
    it (reading, hashing, transcoding) runs while the server COPYs what came before.

    Text that is not UTF-8, or (with `refuse_bad_data`) not readable as CSV, refuses the
    file; with `refuse_bad_data` false every data error is the caller's to handle.
    """
    try:
        with conn.cursor() as cur, closing(read_ahead(data)) as ahead:
            with cur.copy(statement) as copy:
                for chunk in ahead:
                    copy.write(chunk)
            return cur.rowcount
    except errors.BadCopyFileFormat:
        raise
    except (errors.CharacterNotInRepertoire, errors.UntranslatableCharacter) as exc:
        if not refuse_bad_data:
            raise
        if "0x00" in (exc.diag.message_primary or ""):  # valid UTF-8, but no text holds it
            raise NulByte(f"{_copy_error(exc)} (a NUL byte: binary data or a UTF-16 file?)") from exc
        raise FileRefused(f"{_copy_error(exc)} (the file must be UTF-8 text; a Windows-1251 export?)") from exc
    except psycopg.DataError as exc:
        if not refuse_bad_data:
            raise
        raise FileRefused(f"not readable as CSV: {_copy_error(exc)}") from exc


def _copy_direct(conn: psycopg.Connection, load: _FileLoad, header: CsvHeader) -> int:
    """COPY a CSV whose header names only contract columns straight into the raw table.

    `_file_id` (the transaction's file id setting) and `_line` (the entity's line sequence,
    reset to the header's line) come from their column defaults.
    """
    statement = sql.SQL("copy {} ({}) from stdin {}").format(
        entity_table(load.entity),
        sql.SQL(", ").join(map(sql.Identifier, header.columns)),
        _copy_options(header.columns, header.delimiter),
    )
    return _stream_copy(conn, statement, load.source.chunks())


LINE_SHIFT = sql.Identifier("_b2b_line_shift")


def _renumber_lines(
    conn: psycopg.Connection, load: _FileLoad, table: sql.Identifier, records: int, rows: sql.Composable
) -> None:
    """Give the `records` CSV records just COPYed into `table` (its `rows`) the physical line they
    start on, when a quoted value spans lines: COPY numbers records, an editor lines.

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


def _create_incoming(conn: psycopg.Connection, columns: tuple[str, ...], line_identity: bool) -> None:
    # by default, not always: `_renumber_lines` may set it
    line = sql.SQL("_line bigint generated by default as identity (start with 2)" if line_identity else "_line bigint")
    conn.execute(
        sql.SQL("create temp table {} ({}, _problem text, _raw text, {}) on commit drop").format(
            INCOMING, line, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
        )
    )


def _load_csv_staged(
    conn: psycopg.Connection, load: _FileLoad, header: CsvHeader, *, parse_in_python: bool
) -> tuple[int, int]:
    """A CSV through a temporary table: for columns the contract does not name, and for ragged rows."""
    rows = _incoming_rows(load.entity, header.columns)
    decimal_comma = header.delimiter == ";"
    if not parse_in_python:
        try:
            with conn.transaction():
                _create_incoming(conn, header.columns, line_identity=True)
                statement = sql.SQL("copy {} ({}) from stdin {}").format(
                    INCOMING,
                    sql.SQL(", ").join(map(sql.Identifier, header.columns)),
                    _copy_options(header.columns, header.delimiter),
                )
                copied = _stream_copy(conn, statement, load.source.chunks())
                _renumber_lines(conn, load, INCOMING, copied, sql.SQL("true"))
                return _move_incoming(conn, load, rows, decimal_comma)
        except errors.BadCopyFileFormat as exc:
            log.info("%s: %s; reading it row by row to quarantine the ragged rows", load.file.relpath, _copy_error(exc))
    _create_incoming(conn, header.columns, line_identity=False)
    statement = sql.SQL("copy {} (_line, _problem, _raw, {}) from stdin").format(
        INCOMING, sql.SQL(", ").join(map(sql.Identifier, header.columns))
    )
    try:
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in _parse_csv_rows(load.file, header, load.source.report):
                copy.write_row(row)
    except psycopg.DataError as exc:  # PostgreSQL text holds no NUL: the one value a parsed CSV field can fail on
        if "NUL" in str(exc) or "0x00" in str(exc):
            raise NulByte(str(exc)) from exc
        raise
    return _move_incoming(conn, load, rows, decimal_comma)


def _parse_csv_rows(f: DropFile, header: CsvHeader, report: Callable[[int], None]) -> Iterator[tuple]:
    """(line, problem, raw text, *fields) for each record after the header; a ragged record has a problem."""
    width = len(header.columns)
    with open_binary(f.path, f.compressed) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=header.delimiter, strict=True)
        line = 1
        try:
            next(reader, None)
            line = reader.line_num + 1
            for record in reader:
                start, line = line, reader.line_num + 1
                if not record:
                    continue
                fields = [v if v != "" else None for v in record]
                problem = None
                if len(fields) != width:
                    problem = f"expected {width} fields as in the header, found {len(fields)}"
                    fields = (fields + [None] * width)[:width]
                yield (start, problem, header.delimiter.join(record) if problem else None, *fields)
                if start % 65536 == 0:
                    report(0)
        except UnicodeDecodeError as exc:
            raise FileRefused(f"line {line}: not UTF-8 text (a Windows-1251 export?)") from exc
        except csv.Error as exc:
            if "NUL" in str(exc):
                raise NulByte(str(exc)) from exc
            raise FileRefused(f"line {line}: not readable as CSV ({exc})") from exc


def _move_incoming(
    conn: psycopg.Connection, load: _FileLoad, rows: sql.Composable, decimal_comma: bool
) -> tuple[int, int]:
    """Move the rows of a temporary relation: the unreadable ones to the quarantine, the others
    into the raw table, then those of them that break a rule to the quarantine; (loaded, quarantined).

    `rows` selects `_line`, `_problem` (why the row could not be read at all, else NULL),
    `_raw_row` (jsonb of an unreadable row), every contract column as text, and `_extra`.
    """
    entity = load.entity
    _register(conn, load, 0)
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
    invalid = _quarantine_invalid(conn, load, decimal_comma)
    return moved - invalid, unreadable + invalid


def _incoming_rows(entity: Entity, columns: tuple[str, ...]) -> sql.Composable:
    """The rows of `_b2b_incoming` (a CSV's header columns) in the shape `_move_incoming` reads."""
    contract = sql.SQL(", ").join(
        sql.SQL("{} as {}").format(sql.Identifier(c) if c in columns else sql.SQL("null::text"), sql.Identifier(c))
        for c in entity.column_names
    )
    unknown = [c for c in columns if c not in entity.column_names]
    return sql.SQL(
        "select _line, _problem, case when _problem is not null then jsonb_build_object('line', _raw) end as _raw_row, "
        "{}, {} as _extra from {}"
    ).format(contract, _extra_expression(unknown), INCOMING)


def _extra_expression(unknown: list[str]) -> sql.Composable:
    """A jsonb of the columns the contract does not name (jsonb_build_object takes 100 arguments at most)."""
    if not unknown:
        return sql.SQL("null::jsonb")
    parts = [
        sql.SQL("jsonb_build_object({})").format(
            sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(c)) for c in unknown[i : i + 50])
        )
        for i in range(0, len(unknown), 50)
    ]
    return sql.SQL(" || ").join(parts)


class _NotEveryLineAnObject(Exception):
    """A JSON Lines file holds a line that is JSON but not an object: the checking path names it."""


def _load_jsonl(conn: psycopg.Connection, load: _FileLoad) -> tuple[int, int]:
    """JSON Lines: transcoded to CSV on the client and COPYed straight into the raw table when
    every line is a flat object of contract fields (`jsonl.csv_from_json_lines`), else by SQL."""
    names = load.entity.column_names
    try:
        with conn.transaction():  # a savepoint: anything the client-side path does not handle undoes it
            # `_line` from the line sequence: JSON Lines have no header, the first record is line 1
            conn.execute(
                sql.SQL("select setval({}, 1, false)").format(sql.Literal(line_sequence(load.entity).as_string(conn)))
            )
            copied = _stream_copy(
                conn,
                sql.SQL("copy {} ({}) from stdin {}").format(
                    entity_table(load.entity), sql.SQL(", ").join(map(sql.Identifier, names)), _copy_options(names)
                ),
                jsonl.csv_from_json_lines(load.source.chunks(), names),
                refuse_bad_data=False,
            )
    except (jsonl.NotTranscodable, psycopg.DataError) as exc:
        log.info("%s: %s; parsing it in SQL", load.file.relpath, exc)
    else:
        _register(conn, load, copied)
        invalid = _quarantine_invalid(conn, load, False)
        return copied - invalid, invalid
    return _load_jsonl_sql(conn, load)


def _load_jsonl_sql(conn: psycopg.Connection, load: _FileLoad) -> tuple[int, int]:
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
            copied = _stream_copy(
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
            _copy_error(exc) if isinstance(exc, psycopg.Error) else "a line is not a JSON object",
        )
        return _load_jsonl_checked(conn, load)
    _register(conn, load, moved)
    invalid = _quarantine_invalid(conn, load, False)
    return moved - invalid, invalid


def _load_jsonl_checked(conn: psycopg.Connection, load: _FileLoad) -> tuple[int, int]:
    """JSON Lines with lines that are not JSON objects: each line COPYed as one text value,
    then checked, parsed and split into columns in SQL; the bad lines go to the quarantine."""
    conn.execute(
        sql.SQL("create temp table {} (_line bigint generated always as identity, _doc text) on commit drop").format(
            INCOMING
        )
    )
    try:
        _stream_copy(
            conn, sql.SQL("copy {} (_doc) from stdin {}").format(INCOMING, JSONL_COPY_OPTIONS), load.source.chunks()
        )
    except errors.BadCopyFileFormat as exc:  # a raw control character \x01 or \x02: no JSON text holds one
        raise FileRefused(f"not readable as JSON Lines: {_copy_error(exc)}") from exc
    return _move_incoming(conn, load, _json_rows(load.entity, INCOMING), False)


def _json_rows(entity: Entity, lines: sql.Identifier) -> sql.Composable:
    """The JSON lines of the table `lines` parsed, in the shape `_move_incoming` reads."""
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


def _quarantine_invalid(conn: psycopg.Connection, load: _FileLoad, decimal_comma: bool) -> int:
    """Move the file's rows in the raw table that break a rule of SOURCES.md to the quarantine,
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
