"""The client-side JSON Lines path: which files it transcodes to CSV, and which it leaves to SQL."""

from __future__ import annotations

import csv
import io

import pytest

from b2b_pipeline.filedrop import jsonl

NAMES = ("id", "name", "note")


def transcode(text: bytes, chunk: int = 7) -> list[list[str]]:
    """The CSV records of `text` fed in chunks of `chunk` bytes, parsed back."""
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    out = b"".join(jsonl.csv_from_json_lines(pieces, NAMES)).decode()
    return list(csv.reader(io.StringIO(out)))


def test_flat_string_objects_become_csv_records_in_line_order() -> None:
    text = (
        '{"id": "1", "name": "ООО «Ромашка»", "note": null}\n'
        '{"note": "a, \\"quoted\\"\\nsecond line", "id": "2"}\r\n'
        '{"id": "3", "name": "", "id": "3b"}\n'
        '{"id": "4", "name": "\\u00e9\\ud83d\\ude00 \\\\ \\/"}'  # the last line has no newline
    ).encode()
    assert transcode(text) == [
        ["1", "ООО «Ромашка»", ""],
        ["2", "", 'a, "quoted"\nsecond line'],
        ["3b", "", ""],  # a repeated field: the last value wins, as in jsonb
        ["4", "é😀 \\ /", ""],
    ]


def test_lines_without_escapes_give_the_same_records() -> None:
    # no backslash anywhere: the quicker writer, which falls back to the csv module when needed
    text = (
        b'{"id": "1", "name": null, "note":null}\n'
        b'{"id": "2", "name": "null", "note": "a, b"}\n'  # a comma needs quoting
        b'{"id": "3", "name":  null, "note": ""}\n'  # a null spaced otherwise
        b'{"id": "4", "name": "x: null"}\n'
    )
    assert transcode(text) == [["1", "", ""], ["2", "null", "a, b"], ["3", "", ""], ["4", "x: null", ""]]
    assert transcode(b'{"id": "1", "name": null}\n{"id": "2", "note": "n"}\n') == [["1", "", ""], ["2", "", "n"]]


def test_empty_input_and_a_trailing_blank_line() -> None:
    assert transcode(b"") == []
    assert transcode(b'{"id": "1"}\n  \n'[:-3] + b"\n") == [["1", "", ""]]
    assert transcode(b'{"id": "1"}\n   ') == [["1", "", ""]]


def test_lines_are_transcoded_as_they_stream() -> None:
    line = b'{"id": "1", "name": "' + b"x" * 50 + b'"}\n'
    pieces = [line[:30], line[30:] + line[:10], line[10:], line, line, line + b"\n \n"]
    out = list(jsonl.csv_from_json_lines(iter(pieces), NAMES))
    assert len(out) == 5 and all(o.count(b"\n") == 1 for o in out)  # a record a line, none held back
    with pytest.raises(jsonl.NotTranscodable):  # the blank lines were not at the end
        list(jsonl.csv_from_json_lines(iter([*pieces, line]), NAMES))


@pytest.mark.parametrize(
    "text",
    [
        b'{"id": "1"}\n\n{"id": "2"}\n',  # a blank line: line numbers would shift
        b'{"id": "1"}\n   \n{"id": "2"}\n',
        b'{"id": "1"} \n',  # a line that does not end with }
        b'{"id": "1"}\n[1, 2]\n',  # not an object
        b'{"id": "1"}\n"text"\n',
        b'{"id": "1"},{"id": "2"}\n{"id": "3"}\n',  # two objects on one line
        b'{"id": "1",\n"name": "x"}\n',  # one object over two lines
        b'{"id": "1"}{"id": "2"}\n',
        b'{"id": 1}\n',  # a number: its text is PostgreSQL's to write
        b'{"id": "1", "note": true}\n',
        b'{"id": "1", "note": {"a": "b"}}\n',
        b'{"id": "1", "extra": "x"}\n',  # a field the contract does not name goes to _extra
        b'{"id": "1\\u0000"}\n',  # PostgreSQL text holds no NUL
        b'{"id": "\\ud800"}\n',  # a lone surrogate
        b'{"id": "\xff"}\n',  # not UTF-8
        b'{"id": "1"}\r{"id": "2"}\n',  # a carriage return that ends no line
        b'{"id": "1"\n',  # not JSON
        b"{not json}\n",
    ],
)
def test_anything_else_is_left_to_sql(text: bytes) -> None:
    with pytest.raises(jsonl.NotTranscodable):
        transcode(text, chunk=1 << 20)
