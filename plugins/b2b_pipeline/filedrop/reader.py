"""Reading a drop file as a byte stream: gzip, byte-order mark, CSV header and delimiter.

Nothing here holds a whole file in memory: the loader streams `chunks()` into
PostgreSQL COPY.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Full, Queue
from typing import BinaryIO, TypeVar

BOM = b"\xef\xbb\xbf"
CHUNK = 1 << 20
HEADER_LIMIT = 1 << 20  # a header longer than 1 MiB is not a header
READ_AHEAD = 4  # items `read_ahead` holds ready for its consumer at most

T = TypeVar("T")


class FileRefused(Exception):
    """The file cannot be read as its entity at all; nothing of it loads."""


class NulByte(FileRefused):
    """The file holds a NUL byte, which no UTF-8 text (and no PostgreSQL text) holds: `nul_byte_reason` says where."""


# byte-order marks of the encodings a NUL byte betrays, longest first (UTF-32 LE starts like UTF-16 LE)
WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32", "FF FE 00 00, little-endian"),
    (b"\x00\x00\xfe\xff", "UTF-32", "00 00 FE FF, big-endian"),
    (b"\xff\xfe", "UTF-16", "FF FE, little-endian"),
    (b"\xfe\xff", "UTF-16", "FE FF, big-endian"),
)


def refuse_wide_encoding(start: bytes) -> None:
    """Refuse a file whose first bytes `start` are the byte-order mark of UTF-16 or UTF-32."""
    for bom, encoding, name in WIDE_BOMS:
        if start.startswith(bom):
            raise FileRefused(
                f"a {encoding} file (byte-order mark {name}): the drop takes UTF-8 text; save it as UTF-8"
            )


def check_start(path: Path, compressed: bool) -> None:
    """Refuse a UTF-16 or UTF-32 file by its byte-order mark (COPY would only say it is not UTF-8)."""
    with open_binary(path, compressed) as f:
        try:
            start = f.read(4)
        except (OSError, EOFError) as exc:
            raise FileRefused(f"not a readable gzip file ({exc})") from exc
    refuse_wide_encoding(start)


def nul_byte_reason(path: Path, compressed: bool) -> str | None:
    """Where the file's first NUL byte is (line, byte offset of the content), as a refusal reason; None without one."""
    offset, newlines = 0, 0
    with open_binary(path, compressed) as f:
        while chunk := f.read(CHUNK):
            at = chunk.find(b"\x00")
            if at >= 0:
                where = "of the uncompressed content" if compressed else "of the file"
                line = newlines + chunk.count(b"\n", 0, at) + 1
                return (
                    f"a NUL byte (0x00) at line {line}, byte offset "
                    f"{offset + at} {where}: binary data or a UTF-16 file? (the file must be UTF-8 text)"
                )
            offset += len(chunk)
            newlines += chunk.count(b"\n")
    return None


def open_binary(path: Path, compressed: bool) -> BinaryIO:
    """The file's content as a binary stream, decompressed when it is gzip."""
    if compressed:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file's bytes as stored, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_ahead(items: Iterable[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """`items`, produced on a thread of their own up to `depth` ahead of the consumer.

    The loader's COPY is the server's work; reading, hashing and transcoding the file
    are the client's. Run on their own thread they overlap the COPY instead of
    alternating with it (file reads, hashing and the socket release the GIL). An
    exception raised producing an item is raised here, in its place. Close the
    iterator (`contextlib.closing`) to stop the producer when the consumer stops early.
    """
    queue: Queue[tuple[bool, object]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put((False, item)):
                    return
            put((True, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((True, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="b2b-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            done, value = queue.get()
            if done:
                if value is not None:
                    raise value  # type: ignore[misc]
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # let a producer blocked on a full queue see `stop`
            try:
                queue.get_nowait()
            except Empty:
                thread.join(0.1)


class _HashingReader:
    """A binary file that feeds every byte read from it to a digest."""

    def __init__(self, raw: BinaryIO, digest: hashlib._Hash) -> None:
        self._raw = raw
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        return data

    def tell(self) -> int:
        return self._raw.tell()


def chunks(path: Path, compressed: bool, digest: hashlib._Hash | None = None) -> Iterator[tuple[bytes, int]]:
    """The file's content in chunks, without a leading byte-order mark, each with the
    number of stored (possibly compressed) bytes read so far, for progress.

    With `digest`, every stored byte of the file is fed to it on the way (the same
    bytes `sha256_of` reads), so that hashing the file costs no second read: once the
    iteration has ended the digest is the file's.
    """
    with path.open("rb") as stored:
        source: BinaryIO = _HashingReader(stored, digest) if digest else stored  # type: ignore[assignment]
        stream: BinaryIO = gzip.GzipFile(fileobj=source, mode="rb") if compressed else source  # type: ignore[assignment]
        first = True
        while True:
            try:
                chunk = stream.read(CHUNK)
            except (OSError, EOFError) as exc:
                if compressed:
                    raise FileRefused(f"not a readable gzip file ({exc})") from exc
                raise
            if not chunk:
                break
            if first:
                first = False
                if chunk.startswith(BOM):
                    chunk = chunk[len(BOM) :]
            yield chunk, stored.tell()
        if digest:  # whatever gzip left unread (nothing, as a rule) is still part of the file
            while rest := stored.read(CHUNK):
                digest.update(rest)


@dataclass(frozen=True)
class CsvHeader:
    """The header row of a CSV file and its detected delimiter."""

    columns: tuple[str, ...]
    delimiter: str


def read_csv_header(path: Path, compressed: bool) -> CsvHeader:
    """Detect the delimiter (`,` or `;`) from the header line and parse it.

    Raises FileRefused when the file is empty, not UTF-8 (UTF-16, a NUL byte), or its header repeats a column.
    """
    with open_binary(path, compressed) as f:
        try:
            raw = f.readline(HEADER_LIMIT)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise FileRefused(f"not a readable gzip file ({exc})") from exc
    refuse_wide_encoding(raw)
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        raise FileRefused(
            f"a NUL byte (0x00) at line 1, byte offset {at}: binary data or a UTF-16 file? "
            "(the file must be UTF-8 text)"
        )
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused("line 1: the header is not UTF-8 text (a Windows-1251 export?)") from exc
    if not line.strip():
        raise FileRefused("line 1: empty file or empty header row")
    delimiter = ";" if _count_outside_quotes(line, ";") > _count_outside_quotes(line, ",") else ","
    row = next(csv.reader(io.StringIO(line), delimiter=delimiter))
    columns = tuple(c.strip().lower() for c in row)
    if any(not c for c in columns):
        raise FileRefused("line 1: the header has an empty column name")
    seen: set[str] = set()
    dupes = sorted({c for c in columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dupes:
        raise FileRefused(f"line 1: the header repeats column(s) {', '.join(dupes)}")
    return CsvHeader(columns=columns, delimiter=delimiter)


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count
