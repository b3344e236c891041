"""A drop file streamed into PostgreSQL COPY: its bytes, with progress, SHA-256 and line count taken
on the way, and the COPY that takes them, which refuses a file COPY cannot read as text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from b2b_pipeline.filedrop.discover import DropFile
from b2b_pipeline.filedrop.reader import FileRefused, NulByte, chunks, read_ahead, sha256_of

COPY_LINE = re.compile(r"line (\d+)")


@dataclass
class Source:
    """A drop file as the loader streams it: its chunks, with progress, and its SHA-256 taken on the way."""

    file: DropFile
    report: Callable[[int], None]
    sha256: str | None = None
    lines: int | None = None  # physical lines of the content (a last line without a newline counts), once streamed

    def chunks(self) -> Iterator[bytes]:
        """The file's content for COPY; the first stream that runs to its end also hashes the file.

        A stream that runs to its end also counts the content's lines (`lines`): when a CSV
        has more lines than records, a quoted value spans lines (see `csv_lines.renumber_lines`).
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


def copy_error(exc: psycopg.Error) -> str:
    """The server's message of a failed COPY, led by the line of the file it names."""
    context = exc.diag.context or ""
    match = COPY_LINE.search(context)
    where = f"line {match.group(1)}: " if match else ""
    return f"{where}{exc.diag.message_primary or exc}"


def copy_options(columns: tuple[str, ...], delimiter: str | None = None) -> sql.Composable:
    """COPY options for CSV whose empty values, quoted or not, are NULL: a file's (`delimiter`,
    with a header) or the client-side path's (`,`, no header)."""
    if delimiter is None:
        return sql.SQL("(format csv, force_null ({}))").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    return sql.SQL("(format csv, header true, delimiter {}, force_null ({}))").format(
        sql.Literal(delimiter), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def stream_copy(
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
            raise NulByte(f"{copy_error(exc)} (a NUL byte: binary data or a UTF-16 file?)") from exc
        raise FileRefused(f"{copy_error(exc)} (the file must be UTF-8 text; a Windows-1251 export?)") from exc
    except psycopg.DataError as exc:
        if not refuse_bad_data:
            raise
        raise FileRefused(f"not readable as CSV: {copy_error(exc)}") from exc
