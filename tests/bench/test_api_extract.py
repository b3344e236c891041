"""`b2b bench --api`'s machinery on a tiny company, and the property it is there to show: a nightly
increment costs requests in proportion to the change, not to the history.

The same company is extracted with two histories: as generated, and with thousands of extra
records that changed long before the last day (clones of its own records, CRM and billing, in an
older dated folder of the drop: sixty days back, also out of the 30 days of events Stripe keeps).
The last day's change is the same in both, so the increment must cost the same requests in both,
and far fewer than the full extraction of the longer history. The numbers themselves are not
asserted; requests are deterministic given the drop, so their equality is.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from b2b_pipeline.bench.api_extract import (
    DOCUMENTED_LIMIT,
    SOURCES,
    SYSTEM,
    api_company,
    bench_source,
    run_api_bench,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START, END = date(2026, 6, 1), date(2026, 11, 25)
ACCOUNTS = 20
CLONES = 1000  # extra old records per entity in the longer history
CLONED = {  # system -> entity -> its id column and the prefix of a new id (Stripe's form for billing)
    "crm": {
        "accounts": ("account_id", ""),
        "contacts": ("contact_id", ""),
        "deals": ("deal_id", ""),
        "activities": ("activity_id", ""),
    },
    "billing": {
        "customers": ("customer_id", "cus_"),
        "subscriptions": ("subscription_id", "sub_"),
        "invoices": ("invoice_id", "in_"),
    },
}


def _dialect(path: Path) -> tuple[str, str]:
    """A CSV file's encoding (with its byte order mark or not) and delimiter (billing's `;`)."""
    raw = path.read_bytes()
    encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    header = raw.decode(encoding).split("\n", 1)[0]
    return encoding, ";" if header.count(";") > header.count(",") else ","


def _read(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return list(rows[0]), rows
    encoding, delimiter = _dialect(path)
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, fields: list[str], rows: list[dict[str, Any]], like: Path) -> None:
    """`rows` in a file of `like`'s format."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return
    encoding, delimiter = _dialect(like)
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


def longer_history(drop: Path, target: Path) -> Path:
    """A copy of `drop` with `CLONES` more accounts, contacts, deals and activities, and as many more
    billing customers, subscriptions and invoices, each a copy of one of the drop's own records
    under a new id, last changed sixty days before the last day (out of the increment's lookback
    window and of Stripe's 30 days of events), one a second."""
    shutil.copytree(drop, target)
    day = END - timedelta(days=60)
    noon = datetime.combine(day, time(12), tzinfo=UTC)
    for system, entities in CLONED.items():
        folder = target / system
        old = folder / day.isoformat()
        old.mkdir()
        for entity, (key, prefix) in entities.items():
            [base] = [p for p in folder.iterdir() if p.is_file() and p.name.split(".", 1)[0] == entity]
            fields, rows = _read(base)
            live = [r for r in rows if str(r.get("is_deleted")).lower() not in ("true", "1")]
            clones = []
            for i in range(CLONES):  # one a second: a list of its own, not one long tie
                moment = (noon + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
                times = {k: moment for k in ("created_at", "updated_at") if k in fields}
                clones.append({**live[i % len(live)], key: f"{prefix}{9_000_000 + i}", **times})
            _write(old / base.name, fields, clones, base)
    return target


@pytest.fixture(scope="module")
def measured(admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The bench run on the tiny company (report files and all), then every source on the longer history."""
    root = tmp_path_factory.mktemp("api-bench")
    cache, out, home = root / "cache", root / "out", root / "home"
    json_path, markdown = run_api_bench(
        ["T"], admin_dsn, home, cache, out, lambda _: None, accounts={"T": ACCOUNTS}, start=START, end=END
    )
    company = api_company(cache, "T", ACCOUNTS, lambda _: None, start=START, end=END)
    longer = longer_history(company.drop, root / "longer" / "drop")
    return {
        "json_path": json_path,
        "markdown": markdown,
        "report": json.loads(json_path.read_text()),
        "longer": {s: bench_source(s, longer, END, admin_dsn, home, lambda _: None) for s in SOURCES},
    }


def test_report_has_both_nights_of_every_source(measured: dict[str, Any]) -> None:
    json_path, report = measured["json_path"], measured["report"]
    assert json_path.name.startswith("api-bench-") and json_path.with_suffix(".md").read_text() == measured["markdown"]
    [t] = report["sizes"]
    assert t["size"] == "T" and t["accounts"] == ACCOUNTS
    assert t["history_crm_rows"] > 0 and t["change_crm_rows"] > 0 and t["history_billing_rows"] > 0
    assert set(t["sources"]) == set(SOURCES)
    for source, r in t["sources"].items():
        for night in ("full", "increment"):
            n = r[night]
            assert n["requests"] == n["served_requests"] > 0, (source, night)  # the connector's count is the fake's
            assert n["error_answers"] == 0  # the raised limits never throttled
            assert sum(n["requests_by_kind"].values()) == sum(n["requests_by_endpoint"].values()) == n["requests"]
            # (the tiny company's last day may change nothing Stripe serves: its billing folder's fx rates)
            nothing_changed = night == "increment" and t[f"change_{SYSTEM[source]}_rows"] == 0
            assert (n["rows_landed"] > 0 or nothing_changed) and n["wall_seconds"] > 0, (source, night)
            limit = DOCUMENTED_LIMIT[source]
            if source == "hubspot":  # searches at their own 5 a second, the others at 10
                searches = sum(v for k, v in n["requests_by_endpoint"].items() if k.endswith("/search"))
                assert 0 < searches == n["search_requests"] < n["requests"]
                seconds = searches / limit["search_rate"] + (n["requests"] - searches) / limit["rate"]
                assert n["documented_limit_seconds"] == round(seconds, 1)
            else:
                assert n["documented_limit_seconds"] == round(n["requests"] / limit["rate"], 1)
        changed = t[f"change_{SYSTEM[source]}_rows"]
        expected = round(r["increment"]["requests"] / changed, 3) if changed else None
        assert r["increment_requests_per_changed_row"] == expected, source
    # the kinds each source has: HubSpot finds deletions by its lists of archived records, every night;
    # Stripe lists its objects whole on the first night only, then reads events
    for night in ("full", "increment"):
        assert t["sources"]["hubspot"][night]["requests_by_kind"]["deletions"] > 0
        assert t["sources"]["hubspot"][night]["requests_by_kind"]["whole_lists"] > 0
    assert t["sources"]["stripe"]["full"]["requests_by_kind"]["whole_lists"] >= 3
    assert t["sources"]["stripe"]["increment"]["requests_by_kind"]["whole_lists"] == 0
    for source in SOURCES:
        for night in ("full", "increment"):
            assert f"| T | {source} | {night} |" in measured["markdown"]


@pytest.mark.parametrize("source", SOURCES)
def test_the_increment_costs_the_change_not_the_history(measured: dict[str, Any], source: str) -> None:
    short = measured["report"]["sizes"][0]["sources"][source]
    long = measured["longer"][source]
    cloned = len(CLONED[SYSTEM[source]])
    # the longer history costs the full extraction more requests...
    assert long["full"]["requests"] >= short["full"]["requests"] + 3 * cloned
    assert long["full"]["rows_landed"] >= short["full"]["rows_landed"] + cloned * CLONES
    # ...but the same change costs the increment the same requests for the changes and the small
    # lists (and HubSpot's lists of archived records: no clone is archived), and lands the same rows
    for kind in ("changes", "whole_lists", "deletions"):
        assert long["increment"]["requests_by_kind"][kind] == short["increment"]["requests_by_kind"][kind], kind
    assert long["increment"]["rows_landed"] == short["increment"]["rows_landed"]
    # far fewer change requests than the full extraction of the longer history (Stripe's full
    # extraction reads the history as whole lists, its changes as 30 days of events; HubSpot's
    # increment has a floor of 21: a search per object type, a batch read of the changed deals and
    # an association read per pair of types)
    full = long["full"]["requests_by_kind"]
    assert long["increment"]["requests_by_kind"]["changes"] * (4 if source == "hubspot" else 5) <= (
        full["changes"] + full["whole_lists"] if source == "stripe" else full["changes"]
    )


@pytest.mark.parametrize("source", SOURCES)
def test_the_increments_total_requests_do_not_grow_with_the_history(measured: dict[str, Any], source: str) -> None:
    """amoCRM, HubSpot and Stripe: not at all (HubSpot lists only its archived records; Stripe reads
    events). Bitrix24 keeps no list of deletions: each night checks the live ids it did not read,
    2,500 a request (batches of 50 `@ID` lists of 50), so 4,000 more records over four lists may
    cost it at most one more request per list, where an id scan would cost 80."""
    short = measured["report"]["sizes"][0]["sources"][source]
    long = measured["longer"][source]
    grown = long["increment"]["requests"] - short["increment"]["requests"]
    assert 0 <= grown <= (len(CLONED["crm"]) if source == "bitrix24" else 0), grown
    assert long["increment"]["requests"] * 2 <= long["full"]["requests"]


def test_the_command_refuses_an_unknown_source_before_touching_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from b2b_pipeline.cli import app

    result = CliRunner().invoke(
        app, ["bench", "--api", "--source", "salesforce"], env={"B2B_HOME": str(tmp_path / "home")}
    )
    said = " ".join(result.output.replace("│", " ").split())  # the error's box wraps its lines
    assert result.exit_code == 2 and "sources are amocrm, bitrix24, hubspot, stripe;" in said
    assert not (tmp_path / "home").exists()
