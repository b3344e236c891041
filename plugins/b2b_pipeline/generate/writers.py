"""Streaming entity file writers in the file-drop formats (docs/sources.md).

- CRM entities: UTF-8 CSV, `,` delimiter, decimal point.
- Billing entities: as a Russian-locale spreadsheet export writes them: UTF-8 with a
  byte-order mark, `;` delimiter, decimal comma (`1234,50`).
- `activities`: JSON Lines (`activities.jsonl`), every value a string or null.

All with `\\n` line ends and minimal quoting; `.gz` when compressed, with a
deterministic gzip header (mtime 0, no file name), so that the same rows give
the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from b2b_pipeline.filedrop.spec import Entity, Kind

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class FileFormat:
    suffix: str  # "csv" or "jsonl"
    delimiter: str = ","
    bom: bool = False
    decimal_comma: bool = False


CRM_CSV = FileFormat("csv")
BILLING_CSV = FileFormat("csv", delimiter=";", bom=True, decimal_comma=True)
JSON_LINES = FileFormat("jsonl")
JSONL_ENTITIES = frozenset({"activities"})


def format_for(entity: Entity) -> FileFormat:
    if entity.name in JSONL_ENTITIES:
        return JSON_LINES
    return BILLING_CSV if entity.system == "billing" else CRM_CSV


def file_name(entity: Entity, gz: bool) -> str:
    name = f"{entity.name}.{format_for(entity).suffix}"
    return name + ".gz" if gz else name


class _LastLine:
    """A file-like object that keeps only what was written last (one CSV row)."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line = ""

    def write(self, text: str) -> None:
        self.line = text


_ROW_TEXT: dict[str, tuple[_LastLine, Any]] = {}


def csv_line(values: list[str], delimiter: str) -> str:
    """One CSV row as text. One csv.writer per delimiter for all files: each holds a 128 KiB buffer."""
    pair = _ROW_TEXT.get(delimiter)
    if pair is None:
        sink = _LastLine()
        pair = _ROW_TEXT[delimiter] = (
            sink,
            csv.writer(sink, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\n"),
        )
    pair[1].writerow(values)
    return pair[0].line


class EntityWriter:
    """Writes the rows of one entity to one file, opened on the first row (or on `open()`).

    A gzip compressor holds about 256 KiB; with `spool=True` (the day folders: up to
    12 x 60 files open at once) the rows go uncompressed to `<file>.part` and are
    compressed on `close()`, so that many open writers cost only a small buffer each.
    """

    def __init__(self, path: Path, entity: Entity, gz: bool, spool: bool = False) -> None:
        self.path = path
        self.entity = entity
        self.format = format_for(entity)
        self.gz = gz
        self.spool = spool and gz
        self._part = path.with_name(path.name + ".part")
        self.rows = 0
        self._columns = entity.column_names
        self._numbers = tuple(
            i for i, c in enumerate(entity.columns) if c.kind is Kind.NUMBER and self.format.decimal_comma
        )
        self._raw: BinaryIO | None = None
        self._gz: gzip.GzipFile | None = None
        self._out: BinaryIO | None = None
        self.closed = False

    @property
    def is_open(self) -> bool:
        return self._out is not None

    def open(self) -> None:
        if self._out is not None:
            return
        if self.closed:
            raise ValueError(f"{self.path} is closed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = self._part if self.spool else self.path
        self._raw = open(target, "wb", buffering=(1 << 13) if self.spool else (1 << 16))  # noqa: SIM115
        self._out = self._raw
        if self.gz and not self.spool:
            # filename="" and mtime=0: no name and no time in the header, so the bytes are reproducible
            self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6, mtime=0)
            self._out = io.BufferedWriter(self._gz, 1 << 16)  # type: ignore[arg-type]
        if self.format.bom:
            self._out.write(BOM)
        if self.format.suffix == "csv":
            self._out.write(csv_line(list(self._columns), self.format.delimiter).encode())

    def write(self, row: dict[str, str]) -> None:
        if self._out is None:
            self.open()
        values = [row.get(c, "") for c in self._columns]
        if self.format.suffix == "csv":
            for i in self._numbers:
                values[i] = values[i].replace(".", ",")
            line = csv_line(values, self.format.delimiter)
        else:
            obj = {c: (v if v != "" else None) for c, v in zip(self._columns, values, strict=True)}
            line = json.dumps(obj, ensure_ascii=False) + "\n"
        self._out.write(line.encode())  # type: ignore[union-attr]
        self.rows += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()  # flushes and closes the gzip stream (not the file under it)
            if self._raw is not None and not self._raw.closed:
                self._raw.close()
            self._out = self._gz = self._raw = None
            if self.spool:
                _compress(self._part, self.path)
        self.closed = True


def _compress(source: Path, target: Path) -> None:
    """gzip `source` into `target` (deterministic header) and remove `source`."""
    with (
        open(target, "wb") as raw,
        open(source, "rb") as src,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz,
    ):
        while chunk := src.read(1 << 20):
            gz.write(chunk)
    source.unlink()
