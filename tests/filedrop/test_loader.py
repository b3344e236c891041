"""Extract & load of the file drop into a real PostgreSQL: every format, locale and bad-input rule of the drop
(docs/sources.md)."""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.filedrop import jsonl_copy, loader
from b2b_pipeline.filedrop.loader import LoadReport, load_drop
from b2b_pipeline.filedrop.schema import ensure_raw_schema

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]  # the server too: see tests/conftest.py

DEAL_HEADER = "deal_id,account_id,stage_id,amount,currency,status,created_at,closed_at,updated_at,is_deleted"


def write(root: Path, relpath: str, text: str, *, encoding: str = "utf-8", bom: bool = False) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    if relpath.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def rows(dsn: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def the(report: LoadReport, relpath: str):
    return next(f for f in report.files if f.file == relpath)


def test_comma_csv_lands_every_row_with_load_metadata(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/deals.csv",
        f"{DEAL_HEADER}\n"
        "D1,A1,s1,1000.50,RUB,open,2026-01-05T10:00:00Z,,2026-01-05T10:00:00Z,\n"
        'D2,A1,s2,"2500",USD,won,2026-01-06 09:00:00+03:00,2026-02-01T12:00:00,2026-02-01T12:00:00,false\n',
    )
    report = load_drop(warehouse, tmp_path)
    f = the(report, "crm/deals.csv")
    assert (f.status, f.rows_loaded, f.rows_quarantined) == ("loaded", 2, 0)
    got = rows(
        warehouse,
        "select d.deal_id, d.amount, d.closed_at, d.is_deleted, d._line, l.file, l.batch_id, l.format, l.delimiter "
        "from raw_files.deals d join raw_files.file_loads l on l.file_id = d._file_id order by d._line",
    )
    assert got == [
        ("D1", "1000.50", None, None, 2, "crm/deals.csv", report.batch_id, "csv", ","),
        ("D2", "2500", "2026-02-01T12:00:00", "false", 3, "crm/deals.csv", report.batch_id, "csv", ","),
    ]
    assert rows(warehouse, "select files_loaded, rows_loaded from raw_files.load_batches") == [(1, 2)]


def test_semicolon_csv_with_bom_and_decimal_comma(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "billing/invoices.csv",
        "invoice_id;customer_id;status;currency;amount_total;amount_paid;issued_at;paid_at;updated_at\n"
        "I1;C1;paid;RUB;1234,50;1234,50;2026-03-01;2026-03-01T00:10:00+03:00;2026-03-01\n"
        'I2;"ООО «Ромашка»";open;EUR;99;0;2026-03-02;;2026-03-02\n',
        bom=True,
    )
    report = load_drop(warehouse, tmp_path)
    f = the(report, "billing/invoices.csv")
    assert (f.rows_loaded, f.rows_quarantined) == (2, 0)
    assert rows(warehouse, "select invoice_id, customer_id, amount_total from raw_files.invoices order by 1") == [
        ("I1", "C1", "1234,50"),
        ("I2", "ООО «Ромашка»", "99"),
    ]
    assert rows(warehouse, "select delimiter from raw_files.file_loads") == [(";",)]


def test_decimal_comma_is_not_a_number_in_a_comma_file(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "billing/fx_rates.csv",
        'rate_date,currency,rate\n2026-03-01,USD,"91,5"\n2026-03-01,EUR,99.25\n',
    )
    report = load_drop(warehouse, tmp_path)
    assert (the(report, "billing/fx_rates.csv").rows_loaded, report.rows_quarantined) == (1, 1)
    assert rows(warehouse, "select line, reason from raw_files.quarantine") == [(2, "rate: not a number (91,5)")]


def test_json_lines_with_bad_lines_quarantined(warehouse: str, tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "activity_id": "X1",
                "deal_id": "D1",
                "channel": "call",
                "occurred_at": "2026-01-01T10:00:00Z",
                "updated_at": "2026-01-01T10:00:00Z",
                "is_deleted": False,
                "sentiment": "positive",
            },
            ensure_ascii=False,
        ),
        "{not json",
        "",
        "[1, 2]",
        json.dumps(
            {"activity_id": "X2", "channel": "звонок", "occurred_at": "2026-01-01", "updated_at": "2026-01-01"},
            ensure_ascii=False,
        ),
        json.dumps({"activity_id": "X3", "channel": "email", "occurred_at": "2026-01-02", "updated_at": "2026-01-02"}),
    ]
    write(tmp_path, "crm/activities.jsonl", "\n".join(lines) + "\n")
    report = load_drop(warehouse, tmp_path)
    f = the(report, "crm/activities.jsonl")
    assert (f.rows_loaded, f.rows_quarantined) == (2, 3)
    assert rows(warehouse, "select activity_id, is_deleted, _line, _extra from raw_files.activities order by 1") == [
        ("X1", "false", 1, {"sentiment": "positive"}),
        ("X3", None, 6, None),
    ]
    assert rows(warehouse, "select line, reason from raw_files.quarantine order by line") == [
        (2, "not valid JSON"),
        (4, "not a JSON object"),
        (5, "channel: not one of email, call, meeting, webinar, social, event, other (звонок)"),
    ]


def test_gzip_csv_and_jsonl(warehouse: str, tmp_path: Path) -> None:
    write(tmp_path, "crm/users.csv.gz", "user_id,full_name,updated_at\nU1,Иван Петров,2026-01-01\n")
    write(
        tmp_path,
        "crm/stages.jsonl.gz",
        json.dumps(
            {
                "stage_id": "s1",
                "pipeline_id": "p",
                "stage_name": "Лид",
                "display_order": 1,
                "probability": 0.1,
                "canonical_stage": "lead",
                "updated_at": "2026-01-01",
            }
        )
        + "\n",
    )
    report = load_drop(warehouse, tmp_path)
    assert report.rows_loaded == 2 and report.rows_quarantined == 0
    assert rows(warehouse, "select full_name from raw_files.users") == [("Иван Петров",)]
    assert rows(warehouse, "select display_order, probability from raw_files.stages") == [("1", "0.1")]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-01-05T10:00:00Z", True),
        ("2026-01-05T10:00:00.123456+03:00", True),
        ("2026-01-05 10:00:00", True),
        ("2026-01-05T10:00", True),
        ("2026-01-05", True),
        ("2026-01-05T10:00:00+0300", True),
        ("now", False),
        ("yesterday", False),
        ("infinity", False),
        ("2026-13-05T10:00:00Z", False),
        ("2026-02-30", False),
        ("05.01.2026", False),
    ],
)
def test_timestamp_forms(warehouse: str, tmp_path: Path, value: str, ok: bool) -> None:
    write(tmp_path, "crm/users.csv", f"user_id,full_name,updated_at\nU1,A,{value}\n")
    report = load_drop(warehouse, tmp_path)
    assert report.rows_loaded == int(ok)
    if not ok:
        assert rows(warehouse, "select reason from raw_files.quarantine") == [
            (f"updated_at: not an ISO 8601 timestamp ({value})",)
        ]


def test_booleans(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/users.csv",
        "user_id,full_name,is_active,updated_at\n"
        "U1,A,true,2026-01-01\nU2,B,false,2026-01-01\nU3,C,1,2026-01-01\n"
        "U4,D,0,2026-01-01\nU5,E,,2026-01-01\nU6,F,yes,2026-01-01\n",
    )
    report = load_drop(warehouse, tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (5, 1)
    assert rows(warehouse, "select line, reason from raw_files.quarantine") == [
        (7, "is_active: not a boolean (true/false/1/0) (yes)")
    ]


def test_every_row_rule_quarantines_with_file_line_and_reason(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/2026-01-10/deals.csv",
        f"{DEAL_HEADER}\n"
        "D1,A1,s1,100,RUB,open,2026-01-05T10:00:00Z,,2026-01-05T10:00:00Z,\n"  # good
        ",A1,s1,100,RUB,open,2026-01-05,,2026-01-05,\n"  # missing id
        "D3,A1,s1,12abc,RUB,open,2026-01-05,,2026-01-05,\n"  # bad number
        "D4,A1,s1,-5,RUB,open,2026-01-05,,2026-01-05,\n"  # negative
        "D5,A1,s1,5,RUB,pending,2026-01-05,,2026-01-05,\n"  # outside list
        "D6,A1,s1,5,RUB,won,2026-01-05,,2026-01-05,\n"  # closed_at missing when won
        "D7,A1,s1,5,RUB,open,Jan 5 2026,,2026-01-05,maybe\n"  # bad timestamp and boolean
        "D8,A1,s1,NaN,RUB,lost,2026-01-05,2026-01-07,2026-01-07,1\n",  # NaN is no amount
    )
    report = load_drop(warehouse, tmp_path)
    f = the(report, "crm/2026-01-10/deals.csv")
    assert (f.rows_loaded, f.rows_quarantined) == (1, 7)
    assert rows(warehouse, "select deal_id from raw_files.deals") == [("D1",)]
    quarantined = rows(warehouse, "select file, line, entity, reason, raw_row ->> 'deal_id' from raw_files.quarantine")
    assert sorted(quarantined, key=lambda r: r[1]) == [
        ("crm/2026-01-10/deals.csv", 3, "deals", "deal_id: required value missing", None),
        ("crm/2026-01-10/deals.csv", 4, "deals", "amount: not a number (12abc)", "D3"),
        ("crm/2026-01-10/deals.csv", 5, "deals", "amount: negative (-5)", "D4"),
        ("crm/2026-01-10/deals.csv", 6, "deals", "status: not one of open, won, lost (pending)", "D5"),
        ("crm/2026-01-10/deals.csv", 7, "deals", "closed_at: required when status is won or lost", "D6"),
        (
            "crm/2026-01-10/deals.csv",
            8,
            "deals",
            "created_at: not an ISO 8601 timestamp (Jan 5 2026); is_deleted: not a boolean (true/false/1/0) (maybe)",
            "D7",
        ),
        ("crm/2026-01-10/deals.csv", 9, "deals", "amount: not a number (NaN)", "D8"),
    ]


def test_probability_outside_zero_one(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/stages.csv",
        "stage_id;pipeline_id;stage_name;display_order;probability;canonical_stage;updated_at\n"
        "s1;p;Лид;1;0,1;lead;2026-01-01\n"
        "s2;p;Bad;2;1,5;qualification;2026-01-01\n"
        "s3;p;Bad;3;0,5;discovery;2026-01-01\n",
    )
    report = load_drop(warehouse, tmp_path)
    assert report.rows_loaded == 1
    assert sorted(r[0] for r in rows(warehouse, "select reason from raw_files.quarantine")) == [
        "canonical_stage: not one of lead, qualification, relationship, proposal, negotiation, closing, "
        "post_sale, lost (discovery)",
        "probability: outside [0, 1] (1,5)",
    ]


def test_unknown_columns_are_kept_in_extra(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/users.csv",
        "user_id,full_name,updated_at,slack_handle,region\nU1,A,2026-01-01,@a,EMEA\nU2,B,bad,@b,\n",
    )
    report = load_drop(warehouse, tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    assert rows(warehouse, "select user_id, _line, _extra from raw_files.users") == [
        ("U1", 2, {"slack_handle": "@a", "region": "EMEA"})
    ]
    assert rows(warehouse, "select line, raw_row -> '_extra' ->> 'slack_handle' from raw_files.quarantine") == [
        (3, "@b")
    ]


def test_ragged_rows_are_quarantined_and_the_rest_loads(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/users.csv",
        "user_id,full_name,updated_at\nU1,A,2026-01-01\nU2,B,2026-01-01,extra\nU3,C\n"
        'U4,"multi\nline",2026-01-01\nU5,E,2026-01-01\n',
    )
    report = load_drop(warehouse, tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (3, 2)
    assert rows(warehouse, "select user_id, full_name, _line from raw_files.users order by 1") == [
        ("U1", "A", 2),
        ("U4", "multi\nline", 5),
        ("U5", "E", 7),
    ]
    assert rows(warehouse, "select line, reason, raw_row ->> 'line' from raw_files.quarantine order by line") == [
        (3, "expected 3 fields as in the header, found 4", "U2,B,2026-01-01,extra"),
        (4, "expected 3 fields as in the header, found 2", "U3,C"),
    ]


@pytest.mark.parametrize(
    ("relpath", "content", "problem"),
    [
        ("crm/deals.csv", "deal_id,account_id,stage_id\nD1,A1,s1\n", "required column(s) missing from the header"),
        ("crm/leads.csv", "lead_id\nL1\n", "unknown entity for crm/"),
        ("billing/deals.csv", f"{DEAL_HEADER}\n", "unknown entity for billing/"),
        ("crm/deals.xlsx", "PK\x03\x04", "not a CSV or JSON Lines file"),
        ("crm/users.csv", "", "empty file"),
        ("crm/users.csv.gz", "user_id,full_name,updated_at\n", "not a readable gzip file"),
    ],
)
def test_whole_file_refusals(warehouse: str, tmp_path: Path, relpath: str, content: str, problem: str) -> None:
    path = write(tmp_path, relpath, content)
    if relpath.endswith(".gz"):
        path.write_bytes(path.read_bytes()[:20])  # a truncated gzip
    write(tmp_path, "crm/2026-01-01/users.csv", "user_id,full_name,updated_at\nU9,Good,2026-01-01\n")
    report = load_drop(warehouse, tmp_path)
    refused = the(report, relpath)
    assert refused.status == "refused" and problem in (refused.reason or "")
    assert rows(warehouse, "select file, reason from raw_files.file_refusals") == [(relpath, refused.reason)]
    assert rows(warehouse, "select user_id from raw_files.users") == [("U9",)]  # the good file still loads
    assert rows(warehouse, "select count(*) from raw_files.file_loads where file = %s", relpath) == [(0,)]


def test_non_utf8_file_is_refused_naming_the_line(warehouse: str, tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm/users.csv",
        "user_id,full_name,updated_at\nU1,Ivan,2026-01-01\nU2,Иван,2026-01-01\n",
        encoding="cp1251",
    )
    report = load_drop(warehouse, tmp_path)
    refused = the(report, "crm/users.csv")
    assert refused.status == "refused"
    assert "line 3" in (refused.reason or "") and "UTF-8" in (refused.reason or "")
    assert rows(warehouse, "select count(*) from raw_files.users") == [(0,)]


def test_a_subfolder_that_is_not_a_date_is_reported(warehouse: str, tmp_path: Path) -> None:
    write(tmp_path, "crm/archive/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\n")
    report = load_drop(warehouse, tmp_path)
    assert [(f.file, f.status) for f in report.files] == [("crm/archive", "refused")]


def test_loading_the_same_drop_twice_loads_nothing_new(warehouse: str, tmp_path: Path) -> None:
    write(tmp_path, "crm/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\n")
    write(tmp_path, "billing/fx_rates.csv", "rate_date,currency,rate\n2026-01-01,USD,90\n")
    first = load_drop(warehouse, tmp_path)
    second = load_drop(warehouse, tmp_path)
    assert first.count("loaded") == 2 and first.rows_loaded == 2
    assert second.count("loaded") == 0 and second.count("skipped") == 2 and second.rows_loaded == 0
    assert rows(warehouse, "select count(*) from raw_files.users") == [(1,)]
    # the same content under another name is the same file
    write(tmp_path, "crm/2026-01-02/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\n")
    third = load_drop(warehouse, tmp_path)
    assert the(third, "crm/2026-01-02/users.csv").status == "skipped"


def test_a_dated_change_folder_adds_new_versions_in_date_order(warehouse: str, tmp_path: Path) -> None:
    write(tmp_path, "crm/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\nU2,B,2026-01-01\n")
    load_drop(warehouse, tmp_path)
    write(tmp_path, "crm/2026-01-03/users.csv", "user_id,full_name,updated_at\nU1,A3,2026-01-03\n")
    write(tmp_path, "crm/2026-01-02/users.csv", "user_id,full_name,updated_at\nU1,A2,2026-01-02\nU3,C,2026-01-02\n")
    write(tmp_path, "billing/2026-01-02/fx_rates.csv", "rate_date,currency,rate\n2026-01-02,USD,90\n")
    report = load_drop(warehouse, tmp_path)
    assert [f.file for f in report.files if f.status == "loaded"] == [
        "crm/2026-01-02/users.csv",
        "billing/2026-01-02/fx_rates.csv",
        "crm/2026-01-03/users.csv",
    ]
    versions = rows(
        warehouse,
        "select u.full_name, l.folder_date::text from raw_files.users u "
        "join raw_files.file_loads l on l.file_id = u._file_id where u.user_id = 'U1' order by u._file_id",
    )
    assert versions == [("A", None), ("A2", "2026-01-02"), ("A3", "2026-01-03")]
    assert rows(warehouse, "select count(*) from raw_files.users") == [(5,)]


ACTIVITY_LINES = [
    '{"activity_id": "A1", "deal_id": "D1", "channel": "call", "occurred_at": "2026-01-01T10:00:00Z", '
    '"updated_at": "2026-01-01T10:00:00Z", "is_deleted": "false", "contact_id": null}',
    '{"updated_at": "2026-01-02", "occurred_at": "2026-01-02", "channel": "email", "activity_id": "A2", '
    '"owner_id": "", "account_id": "ООО \\"Ромашка\\", филиал\\nвторая строка \\u00e9"}',
    '{"activity_id": "A3", "channel": "pigeon", "occurred_at": "2026-01-03", "updated_at": "2026-01-03"}',
    '{"activity_id": "A4", "channel": "call", "occurred_at": "2026-02-30", "updated_at": "2026-01-04", '
    '"activity_id": "A4b"}',
]


@pytest.mark.parametrize("path", ["client", "sql"])
def test_json_lines_land_the_same_by_either_path(
    warehouse: str, tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if path == "sql":
        monkeypatch.setattr(loader, "load_jsonl", jsonl_copy._load_jsonl_sql)
    write(tmp_path, "crm/activities.jsonl", "\r\n".join(ACTIVITY_LINES) + "\r\n\r\n")
    with caplog.at_level(logging.INFO, logger="b2b_pipeline.filedrop"):
        report = load_drop(warehouse, tmp_path)
    assert ("parsing it in SQL" in caplog.text) is False  # the client path never fell back
    f = the(report, "crm/activities.jsonl")
    assert (f.rows_loaded, f.rows_quarantined) == (2, 2)
    assert rows(
        warehouse,
        "select activity_id, deal_id, account_id, contact_id, owner_id, channel, is_deleted, _line, _extra "
        "from raw_files.activities order by _line",
    ) == [
        ("A1", "D1", None, None, None, "call", "false", 1, None),
        ("A2", None, 'ООО "Ромашка", филиал\nвторая строка é', None, None, "email", None, 2, None),
    ]
    assert rows(warehouse, "select line, reason, raw_row ->> 'activity_id' from raw_files.quarantine order by 1") == [
        (3, "channel: not one of email, call, meeting, webinar, social, event, other (pigeon)", "A3"),
        (4, "occurred_at: not an ISO 8601 timestamp (2026-02-30)", "A4b"),
    ]
    assert rows(warehouse, "select rows_loaded, rows_quarantined from raw_files.file_loads") == [(2, 2)]


def test_json_lines_with_numbers_are_parsed_in_sql(
    warehouse: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path,
        "billing/fx_rates.jsonl",
        '{"rate_date": "2026-01-01", "currency": "USD", "rate": 91.50}\n'
        '{"rate_date": "2026-01-01", "currency": "EUR", "rate": "99"}\n',
    )
    with caplog.at_level(logging.INFO, logger="b2b_pipeline.filedrop"):
        report = load_drop(warehouse, tmp_path)
    assert "parsing it in SQL" in caplog.text
    assert report.rows_loaded == 2
    assert rows(warehouse, "select currency, rate, _line from raw_files.fx_rates order by _line") == [
        ("USD", "91.50", 1),
        ("EUR", "99", 2),
    ]


def test_files_of_different_entities_load_side_by_side_in_order(warehouse: str, tmp_path: Path) -> None:
    for day in ("2026-01-02", "2026-01-03"):
        write(tmp_path, f"crm/{day}/users.csv", f"user_id,full_name,updated_at\nU1,{day},{day}\n")
        write(tmp_path, f"billing/{day}/fx_rates.csv", f"rate_date,currency,rate\n{day},USD,90\n")
        write(
            tmp_path,
            f"crm/{day}/activities.jsonl",
            f'{{"activity_id": "A{day}", "channel": "call", "occurred_at": "{day}", "updated_at": "{day}"}}\n',
        )
    write(tmp_path, "crm/users.csv", "user_id,full_name,updated_at\nU1,2026-01-01,2026-01-01\n")
    report = load_drop(warehouse, tmp_path, workers=3)
    assert [f.file for f in report.files] == [
        "crm/users.csv",
        "crm/2026-01-02/activities.jsonl",
        "crm/2026-01-02/users.csv",
        "billing/2026-01-02/fx_rates.csv",
        "crm/2026-01-03/activities.jsonl",
        "crm/2026-01-03/users.csv",
        "billing/2026-01-03/fx_rates.csv",
    ]
    assert report.count("loaded") == 7 and report.rows_loaded == 7
    # within an entity, the files load (and get their ids) in drop order
    for table, column in (("users", "full_name"), ("fx_rates", "rate_date"), ("activities", "updated_at")):
        values = rows(warehouse, f"select {column} from raw_files.{table} order by _file_id")
        assert [v for (v,) in values] == sorted(v for (v,) in values)
    assert rows(warehouse, "select files_loaded, rows_loaded from raw_files.load_batches") == [(7, 7)]
    assert rows(warehouse, "select count(distinct file_id), count(*) from raw_files.file_loads") == [(7, 7)]


def test_a_file_loaded_before_and_untouched_is_skipped_unread(warehouse: str, tmp_path: Path) -> None:
    """A drop keeps its history: a night must not read again every file it loaded before. The same
    path, size, modification and status-change times skip a file unread; any doubt hashes it."""
    path = write(tmp_path, "crm/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\n")
    assert the(load_drop(warehouse, tmp_path), "crm/users.csv").status == "loaded"
    again = the(load_drop(warehouse, tmp_path), "crm/users.csv")
    assert again.status == "skipped" and "unchanged" in (again.reason or "")
    # rewritten with other content of the same size, its modification time set back: the status-change
    # time still tells, and the new content loads
    stat = path.stat()
    path.write_text("user_id,full_name,updated_at\nU1,B,2026-01-01\n", encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_size == stat.st_size
    assert the(load_drop(warehouse, tmp_path), "crm/users.csv").status == "loaded"
    # touched: read and hashed again, and skipped for its content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = the(load_drop(warehouse, tmp_path), "crm/users.csv")
    assert touched.status == "skipped" and "content loaded before" in (touched.reason or "")
    assert rows(warehouse, "select full_name from raw_files.users order by _file_id") == [("A",), ("B",)]


def test_a_file_of_the_same_size_but_other_content_loads(warehouse: str, tmp_path: Path) -> None:
    write(tmp_path, "crm/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\n")
    load_drop(warehouse, tmp_path)
    write(tmp_path, "crm/2026-01-02/users.csv", "user_id,full_name,updated_at\nU1,B,2026-01-01\n")
    report = load_drop(warehouse, tmp_path)
    assert the(report, "crm/users.csv").status == "skipped"
    assert the(report, "crm/2026-01-02/users.csv").status == "loaded"
    assert rows(
        warehouse, "select count(distinct content_sha256), count(distinct bytes) from raw_files.file_loads"
    ) == [(2, 1)]


def test_a_raw_table_of_an_older_version_gets_the_new_file_id_default(warehouse: str, tmp_path: Path) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        ensure_raw_schema(conn)
        conn.execute("alter table raw_files.users alter column _file_id set default currval('raw_files.file_id_seq')")
        ensure_raw_schema(conn)
        default = conn.execute(
            "select pg_get_expr(adbin, adrelid) from pg_attrdef where adrelid = 'raw_files.users'::regclass "
            "and adnum = (select attnum from pg_attribute where attrelid = adrelid and attname = '_file_id')"
        ).fetchone()
    assert default is not None and "current_setting" in default[0]
    write(tmp_path, "crm/users.csv", "user_id,full_name,updated_at\nU1,A,2026-01-01\n")
    report = load_drop(warehouse, tmp_path)
    assert rows(warehouse, "select _file_id from raw_files.users") == [(the(report, "crm/users.csv").file_id,)]


def test_a_bad_value_is_found_by_a_parallel_plan(warehouse: str, tmp_path: Path) -> None:
    # planner settings that make even a tiny file's validation a parallel query: on PostgreSQL 15
    # the exact rules' check (an exception block, a subtransaction) must stay out of the workers
    with psycopg.connect(warehouse, autocommit=True) as conn:
        database = conn.info.dbname
        for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
            conn.execute(f"alter database {database} set {setting} = 0")
    good = "".join(f"D{i},s1,2026-01-01T10:00:00Z\n" for i in range(2000))
    write(tmp_path, "crm/deal_stage_history.csv", f"deal_id,stage_id,entered_at\n{good}D9,s1,2026-02-30\n")
    report = load_drop(warehouse, tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (2000, 1)
    assert rows(warehouse, "select line, reason from raw_files.quarantine") == [
        (2002, "entered_at: not an ISO 8601 timestamp (2026-02-30)")
    ]


def test_entities_narrow_a_batch_to_their_files(warehouse: str, tmp_path: Path) -> None:
    """A night whose billing comes from an API still reads the drop's fx_rates, and only them: the
    drop's other billing files, and its unrecognised ones, are neither loaded nor refused."""
    write(tmp_path, "billing/fx_rates.csv", "rate_date,currency,rate\n2026-01-05,USD,90.5\n")
    write(
        tmp_path,
        "billing/customers.csv",
        "customer_id,name,created_at,updated_at\nC1,ООО Ромашка,2026-01-05T10:00:00Z,2026-01-05T10:00:00Z\n",
    )
    write(tmp_path, "billing/notes.txt", "not an entity\n")
    write(tmp_path, "crm/deals.csv", f"{DEAL_HEADER}\n")
    report = load_drop(warehouse, tmp_path, systems=("billing",), entities=("fx_rates",))
    assert [(f.file, f.status, f.rows_loaded) for f in report.files] == [("billing/fx_rates.csv", "loaded", 1)]
    assert rows(warehouse, "select currency, rate from raw_files.fx_rates") == [("USD", "90.5")]
    later = load_drop(warehouse, tmp_path, systems=("billing",))  # the rest stays for a night that reads billing files
    assert {f.file: f.status for f in later.files} == {
        "billing/fx_rates.csv": "skipped",
        "billing/customers.csv": "loaded",
        "billing/notes.txt": "refused",
    }
