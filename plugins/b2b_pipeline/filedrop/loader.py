"""Extract & load of a file drop into `raw_files`, by streaming COPY and set-based SQL.

Per file, in one transaction:
1. skip it when a file of the same entity with the same content (SHA-256) was loaded before;
2. COPY its rows straight into `raw_files.<entity>` (CSV whose header names only contract
   columns), or into a temporary table first (JSON Lines, CSV with columns the contract
   does not name, CSV with ragged rows), from where one INSERT ... SELECT moves them;
3. one DELETE ... RETURNING moves every row that breaks a rule of SOURCES.md, with all
   its reasons, to `raw_files.quarantine`;
4. record the file in the ledger `raw_files.file_loads`.
A file that cannot be read as its entity at all is refused whole and recorded in
`raw_files.file_refusals`; nothing of it loads. See docs/raw-layer.md.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import errors, sql

from b2b_pipeline.filedrop.discover import DropFile, discover
from b2b_pipeline.filedrop.reader import (
    CsvHeader,
    FileRefused,
    chunks,
    open_binary,
    read_csv_header,
    sha256_of,
)
from b2b_pipeline.filedrop.schema import ensure_raw_schema, entity_table, line_sequence
from b2b_pipeline.filedrop.spec import Entity
from b2b_pipeline.filedrop.validate import entity_rules, failure_condition, reason_expression
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (file, stored bytes done, stored bytes total)

INCOMING = sql.Identifier("_b2b_incoming")
# COPY options that read each line of a JSON Lines file as one text value, verbatim: CSV with a quote
# and a delimiter that JSON text never holds unescaped
JSONL_COPY_OPTIONS = sql.SQL("(format csv, delimiter E'\\x02', quote E'\\x01')")
COPY_LINE = re.compile(r"line (\d+)")


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
) -> LoadReport:
    """Load every new file of the drop at `source_dir` (only `systems`, when given) as one batch."""
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
        for drop_file in found.files:
            if systems is not None and drop_file.system not in systems:
                continue
            report.files.append(load_file(conn, batch_id, drop_file, progress))
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


def load_file(conn: psycopg.Connection, batch_id: int, f: DropFile, progress: Progress | None) -> FileResult:
    """Load one file in its own transaction; refuse it whole when it cannot be read as its entity."""
    entity_name = f.entity.name if f.entity else None
    if f.problem:
        return _refuse(conn, batch_id, f.relpath, entity_name, f.problem)
    assert f.entity is not None and f.fmt is not None
    sha = sha256_of(f.path)
    previous = conn.execute(
        "select file, batch_id from raw_files.file_loads where entity = %s and content_sha256 = %s",
        (f.entity.name, sha),
    ).fetchone()
    if previous:
        log.info("%s: skipped, its content was loaded before as %s (batch %s)", f.relpath, *previous)
        return FileResult(
            f.relpath,
            entity_name,
            "skipped",
            reason=f"content loaded before as {previous[0]} (batch {previous[1]})",
        )
    try:
        with conn.transaction():
            result = _load_in_transaction(conn, batch_id, f, sha, progress)
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
    conn: psycopg.Connection, batch_id: int, f: DropFile, sha: str, progress: Progress | None
) -> FileResult:
    entity = f.entity
    assert entity is not None and f.fmt is not None
    # one load of an entity at a time: the line sequence is per entity
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"raw_files.{entity.name}",))
    header = read_csv_header(f.path, f.compressed) if f.fmt == "csv" else None
    if header:
        missing = [c for c in entity.required_names if c not in header.columns]
        if missing:
            raise FileRefused(f"line 1: required column(s) missing from the header: {', '.join(missing)}")
    size = f.path.stat().st_size
    file_id = conn.execute(
        "insert into raw_files.file_loads (batch_id, file, system, entity, folder_date, content_sha256, bytes, "
        "format, delimiter, rows_loaded, rows_quarantined) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0) "
        "returning file_id",
        (
            batch_id,
            f.relpath,
            f.system,
            entity.name,
            f.folder_date,
            sha,
            size,
            f.fmt,
            header.delimiter if header else None,
        ),
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(sql.SQL("select setval({}, 1, true)").format(sql.Literal(line_sequence(entity).as_string(conn))))

    report = (lambda done: progress(f.relpath, done, size)) if progress else (lambda done: None)
    if header is None:
        loaded, quarantined = _load_jsonl(conn, batch_id, file_id, f, report)
    else:
        loaded, quarantined = _load_csv(conn, batch_id, file_id, f, header, report)
    result = FileResult(
        f.relpath,
        entity.name,
        "loaded",
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        file_id=file_id,
    )
    conn.execute(
        "update raw_files.file_loads set rows_loaded = %s, rows_quarantined = %s, loaded_at = clock_timestamp() "
        "where file_id = %s",
        (result.rows_loaded, result.rows_quarantined, file_id),
    )
    return result


def _load_csv(
    conn: psycopg.Connection,
    batch_id: int,
    file_id: int,
    f: DropFile,
    header: CsvHeader,
    report: Callable[[int], None],
) -> tuple[int, int]:
    """Rows of a CSV loaded and quarantined.

    The fast path COPYs straight into the raw table and then moves the rows that break
    a rule to the quarantine; a file with columns the contract does not name, or with
    ragged rows, goes through a temporary table instead.
    """
    assert f.entity is not None
    decimal_comma = header.delimiter == ";"
    if all(c in f.entity.column_names for c in header.columns):
        try:
            with conn.transaction():  # a savepoint: a ragged row sends the file to the staged path
                copied = _copy_direct(conn, f, header, report)
        except errors.BadCopyFileFormat as exc:
            log.info("%s: %s; reading it row by row to quarantine the ragged rows", f.relpath, _copy_error(exc))
            return _load_csv_staged(conn, batch_id, file_id, f, header, report, parse_in_python=True)
        invalid = _quarantine_invalid(conn, batch_id, file_id, f.relpath, f.entity, decimal_comma)
        return copied - invalid, invalid
    return _load_csv_staged(conn, batch_id, file_id, f, header, report, parse_in_python=False)


def _copy_error(exc: psycopg.Error) -> str:
    context = exc.diag.context or ""
    match = COPY_LINE.search(context)
    where = f"line {match.group(1)}: " if match else ""
    return f"{where}{exc.diag.message_primary or exc}"


def _copy_options(columns: list[str] | tuple[str, ...], delimiter: str) -> sql.Composable:
    return sql.SQL("(format csv, header true, delimiter {}, force_null ({}))").format(
        sql.Literal(delimiter), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _stream_copy(
    conn: psycopg.Connection, statement: sql.Composable, f: DropFile, report: Callable[[int], None]
) -> int:
    """COPY the file's bytes through `statement`; the number of rows copied. Unreadable text refuses the file."""
    try:
        with conn.cursor() as cur:
            with cur.copy(statement) as copy:
                for chunk, done in chunks(f.path, f.compressed):
                    copy.write(chunk)
                    report(done)
            return cur.rowcount
    except (errors.CharacterNotInRepertoire, errors.UntranslatableCharacter) as exc:
        raise FileRefused(f"{_copy_error(exc)} (the file must be UTF-8 text; a Windows-1251 export?)") from exc
    except errors.BadCopyFileFormat:
        raise
    except errors.DataException as exc:
        raise FileRefused(f"not readable as CSV: {_copy_error(exc)}") from exc


def _copy_direct(conn: psycopg.Connection, f: DropFile, header: CsvHeader, report: Callable[[int], None]) -> int:
    """COPY a CSV whose header names only contract columns straight into the raw table."""
    assert f.entity is not None
    statement = sql.SQL("copy {} ({}) from stdin {}").format(
        entity_table(f.entity),
        sql.SQL(", ").join(map(sql.Identifier, header.columns)),
        _copy_options(header.columns, header.delimiter),
    )
    return _stream_copy(conn, statement, f, report)


def _create_incoming(conn: psycopg.Connection, columns: tuple[str, ...], line_identity: bool) -> None:
    line = sql.SQL("_line bigint generated always as identity (start with 2)" if line_identity else "_line bigint")
    conn.execute(
        sql.SQL("create temp table {} ({}, _problem text, _raw text, {}) on commit drop").format(
            INCOMING, line, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
        )
    )


def _load_csv_staged(
    conn: psycopg.Connection,
    batch_id: int,
    file_id: int,
    f: DropFile,
    header: CsvHeader,
    report: Callable[[int], None],
    *,
    parse_in_python: bool,
) -> tuple[int, int]:
    """A CSV through a temporary table: for columns the contract does not name, and for ragged rows."""
    assert f.entity is not None
    rows = _incoming_rows(f.entity, header.columns)
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
                _stream_copy(conn, statement, f, report)
                return _move_incoming(conn, batch_id, file_id, f, rows, decimal_comma)
        except errors.BadCopyFileFormat as exc:
            log.info("%s: %s; reading it row by row to quarantine the ragged rows", f.relpath, _copy_error(exc))
    _create_incoming(conn, header.columns, line_identity=False)
    statement = sql.SQL("copy {} (_line, _problem, _raw, {}) from stdin").format(
        INCOMING, sql.SQL(", ").join(map(sql.Identifier, header.columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in _parse_csv_rows(f, header, report):
            copy.write_row(row)
    return _move_incoming(conn, batch_id, file_id, f, rows, decimal_comma)


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
            raise FileRefused(f"line {line}: not readable as CSV ({exc})") from exc


def _move_incoming(
    conn: psycopg.Connection,
    batch_id: int,
    file_id: int,
    f: DropFile,
    rows: sql.Composable,
    decimal_comma: bool,
) -> tuple[int, int]:
    """Validate the rows of a temporary relation once, then insert the good ones into the raw table
    and the others into the quarantine; (loaded, quarantined).

    `rows` selects `_line`, `_problem` (why the row could not be read at all, else NULL),
    `_raw_row` (jsonb of an unreadable row), every contract column as text, and `_extra`.
    """
    entity = f.entity
    assert entity is not None
    rules = entity_rules(entity, decimal_comma)
    conn.execute(
        sql.SQL(
            # offset 0 keeps the rows a subquery, so that each column is computed once, not once per rule
            "create temp table _b2b_checked on commit drop as select r.*, {} as _reason from ({} offset 0) r"
        ).format(reason_expression(rules), rows)
    )
    columns = sql.SQL(", ").join(map(sql.Identifier, entity.column_names))
    quarantined = conn.execute(
        sql.SQL(
            "insert into raw_files.quarantine (batch_id, file_id, file, line, entity, reason, raw_row) "
            "select %s, %s, %s, _line, %s, coalesce(_problem, _reason), "
            "coalesce(_raw_row, jsonb_strip_nulls(to_jsonb(c) - '{_line,_problem,_raw_row,_reason}'::text[])) "
            "from _b2b_checked c where _problem is not null or _reason <> ''"
        ),
        (batch_id, file_id, f.relpath, entity.name),
    ).rowcount
    loaded = conn.execute(
        sql.SQL(
            "insert into {} ({}, _file_id, _line, _extra) select {}, %s, _line, _extra from _b2b_checked "
            "where _problem is null and _reason = ''"
        ).format(entity_table(entity), columns, columns),
        (file_id,),
    ).rowcount
    return loaded, quarantined


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


def _load_jsonl(
    conn: psycopg.Connection, batch_id: int, file_id: int, f: DropFile, report: Callable[[int], None]
) -> tuple[int, int]:
    """JSON Lines: each line COPYed as one text value, parsed and split into columns in SQL."""
    entity = f.entity
    assert entity is not None
    # an unlogged table, not a temporary one, so that PostgreSQL can parse the lines with parallel
    # workers; it lives and dies with this file's transaction
    lines = sql.Identifier("raw_files", f"_incoming_lines_{file_id}")
    conn.execute(
        sql.SQL("create unlogged table {} (_line bigint generated always as identity, _doc text)").format(lines)
    )
    _stream_copy(
        conn,
        sql.SQL("copy {} (_doc) from stdin {}").format(lines, JSONL_COPY_OPTIONS),
        f,
        report,
    )
    try:  # parse each line once, optimistically; a line that is not JSON sends the file to the checking parse
        with conn.transaction():
            moved = _move_incoming(conn, batch_id, file_id, f, _json_rows(entity, lines, check_json=False), False)
    except errors.InvalidTextRepresentation:
        moved = _move_incoming(conn, batch_id, file_id, f, _json_rows(entity, lines, check_json=True), False)
    conn.execute(sql.SQL("drop table {}").format(lines))
    return moved


def _json_rows(entity: Entity, lines: sql.Identifier, *, check_json: bool) -> sql.Composable:
    """The JSON lines of the table `lines` parsed, in the shape `_move_incoming` reads."""
    names = entity.column_names
    contract = sql.SQL(", ").join(
        sql.SQL("nullif(doc ->> {}, '') as {}").format(sql.Literal(c), sql.Identifier(c)) for c in names
    )
    parse = sql.SQL(
        "case when coalesce(raw_files.is_valid_input(_doc, 'jsonb'), false) then _doc::jsonb end"
        if check_json
        else "_doc::jsonb"
    )
    return sql.SQL(
        "select _line, "
        "case when doc is null then 'not valid JSON' when jsonb_typeof(doc) <> 'object' then 'not a JSON object' "
        "end as _problem, "
        "case when doc is null or jsonb_typeof(doc) <> 'object' then jsonb_build_object('line', left(_doc, 10000)) "
        "end as _raw_row, "
        "{}, case when jsonb_typeof(doc) = 'object' then nullif(doc - {}::text[], '{{}}'::jsonb) end as _extra "
        "from (select _line, _doc, {} as doc from {} where _doc is not null and btrim(_doc) <> '' "
        "offset 0) lines"  # offset 0: parse each line once, not once per column
    ).format(contract, sql.Literal(list(names)), parse, lines)


def _quarantine_invalid(
    conn: psycopg.Connection, batch_id: int, file_id: int, relpath: str, entity: Entity, decimal_comma: bool
) -> int:
    """Move the file's rows that break a rule of SOURCES.md to the quarantine, with every reason.

    Finding them is a read-only query, which PostgreSQL may run with parallel workers (a
    DELETE never is); only when it finds rows does a DELETE move them, by line.
    """
    rules = entity_rules(entity, decimal_comma)
    table = entity_table(entity)
    found = conn.execute(
        sql.SQL(
            "create temp table _b2b_bad_lines on commit drop as select _line from {} where _file_id = {} and {}"
        ).format(table, sql.Literal(file_id), failure_condition(rules))
    ).rowcount
    if not found:
        return 0
    statement = sql.SQL(
        "with bad as (delete from {table} t using _b2b_bad_lines b "
        "where t._file_id = {file_id} and t._line = b._line returning t.*) "
        "insert into raw_files.quarantine (batch_id, file_id, file, line, entity, reason, raw_row) "
        "select {batch_id}, _file_id, {file}, _line, {entity}, {reason}, "
        "jsonb_strip_nulls(to_jsonb(bad) - '_file_id' - '_line') from bad"
    ).format(
        table=table,
        file_id=sql.Literal(file_id),
        batch_id=sql.Literal(batch_id),
        file=sql.Literal(relpath),
        entity=sql.Literal(entity.name),
        reason=reason_expression(rules),
    )
    return conn.execute(statement).rowcount
