"""JSON Lines as CSV, on the client, for the loader's fast path.

PostgreSQL parses JSON slowly next to COPY: building a `jsonb` of every line costs
about as much as copying the file, and splitting it into columns as much again. For
the common shape of an export (every line one object whose values are strings or
null, under names of the contract) the client can do it instead, streaming: each
chunk of lines is decoded in one call by `msgspec` into
the contract's columns and written out as CSV, which COPY loads straight into the
raw table.

Anything else raises `NotTranscodable` at once, and the loader loads the file by its
SQL path, which handles every case (a line that is not JSON or not an object, a blank
line, a number, a nested value, a field the contract does not name, ...), so the
result never depends on which path ran: a value lands exactly as `doc ->> 'name'`
reads it, an empty string as NULL, and the record of line N gets `_line` N.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

import msgspec

BLANK = b" \r\n"  # what a blank line holds (PostgreSQL's btrim trims spaces only)


class NotTranscodable(Exception):
    """The file holds something the client-side path does not handle; load it by the SQL path."""


@lru_cache(maxsize=32)
def _decoder(names: tuple[str, ...]) -> tuple[Any, Callable[[Any], tuple]]:
    """A decoder of a JSON array of flat objects with only the fields `names`, each a string or null."""
    row = msgspec.defstruct("Row", [(n, "str | None", None) for n in names], forbid_unknown_fields=True)
    return msgspec.json.Decoder(list[row]), msgspec.structs.astuple


def csv_from_json_lines(chunks: Iterable[bytes], names: tuple[str, ...]) -> Iterator[bytes]:
    """CSV records (no header) of the fields `names`, one per line of the JSON Lines in `chunks`.

    Raises NotTranscodable, before yielding anything of the offending chunk, unless every
    line is exactly one JSON object (no blank lines; `\\r\\n` line ends allowed) whose fields
    are all among `names` and whose values are strings or null.
    """
    decoder, astuple = _decoder(names)
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        # whole lines up to the last one that is not blank: blank lines at the end of the
        # file are nothing (as in SQL), but blank lines before a record shift line numbers
        whole = data.rfind(b"\n") + 1
        last = len(data[:whole].rstrip(BLANK))
        cut = data.find(b"\n", last) + 1 if last else 0
        rest = data[cut:]
        if cut:
            yield _transcode(data[:cut], decoder, astuple)
    if rest.strip(BLANK):
        yield _transcode(rest + b"\n", decoder, astuple)


def _transcode(lines: bytes, decoder: Any, astuple: Callable[[Any], tuple]) -> bytes:
    """The CSV of whole lines (`lines` ends with a newline)."""
    if b"\r" in lines:
        if lines.count(b"\r") != lines.count(b"\r\n"):
            raise NotTranscodable("a carriage return that ends no line")
        lines = lines.replace(b"\r\n", b"\n")
    count = lines.count(b"\n")
    # Every line starts with `{` and ends with `}`, and the lines joined by commas are an
    # array of `count` flat objects: so each line is exactly one object (a flat object
    # cannot span lines, and a line cannot hold two without the count going wrong).
    if not (lines.startswith(b"{") and lines.endswith(b"}\n")) or lines.count(b"}\n{") != count - 1:
        raise NotTranscodable("a line that is not one JSON object")
    array = b"[" + lines[:-1].replace(b"\n", b",") + b"]"
    # Without a backslash no string holds a quote, so `": null` is always a key's null value:
    # read as "" instead, every value is a string (both land as NULL).
    plain = b"\\" not in array
    if plain:
        array = array.replace(b'": null', b'": ""').replace(b'":null', b'":""')
    try:
        records = decoder.decode(array)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise NotTranscodable(str(exc)) from exc
    if len(records) != count:
        raise NotTranscodable("a line that is not one JSON object")
    text = _csv(records, astuple, plain)
    if "\x00" in text:  # PostgreSQL text holds no NUL (its jsonb refuses \u0000 too)
        raise NotTranscodable("a \\u0000 escape")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escape, which PostgreSQL refuses as JSON
        raise NotTranscodable(str(exc)) from exc


def _csv(records: list[Any], astuple: Callable[[Any], tuple], plain: bool) -> str:
    """CSV of the records' values: None and "" both as an empty unquoted field, which COPY reads as NULL."""
    if plain and records:
        # values with no quote, CR or LF (no backslash in the JSON) need no quoting unless
        # they hold a comma, which the count of commas tells
        rows = list(map(astuple, records))
        try:
            text = "\n".join(map(",".join, rows))
        except TypeError:  # a None all the same (a null spaced otherwise than `": null`)
            pass
        else:
            if text.count(",") == len(rows) * (len(rows[0]) - 1):
                return text + "\n"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(map(astuple, records))
    return out.getvalue()
