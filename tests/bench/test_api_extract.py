"""`b2b bench --api`'s machinery on a tiny company, and the property it is there to show: a nightly
increment costs requests in proportion to the change, not to the history.

The same company is extracted with two histories: as generated, and with thousands of extra
records that changed long before the last day (clones of its own records, in an older dated folder
of the drop). The last day's change is the same in both, so the increment must cost the same
requests in both, and far fewer than the full extraction of the longer history. The numbers
themselves are not asserted; requests are deterministic given the drop, so their equality is.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from b2b_pipeline.bench.api_extract import DOCUMENTED_LIMIT, SOURCES, api_company, bench_source, run_api_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START, END = date(2026, 6, 1), date(2026, 11, 25)
ACCOUNTS = 20
CLONES = 1000  # extra old records per entity in the longer history
CLONED = {  # entity -> its id column
    "accounts": "account_id",
    "contacts": "contact_id",
    "deals": "deal_id",
    "activities": "activity_id",
}


def _read(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return list(rows[0]), rows
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def longer_history(drop: Path, target: Path) -> Path:
    """A copy of `drop` with `CLONES` more accounts, contacts, deals and activities, each a copy of
    one of the drop's own records under a new id, last changed sixty days before the last day (out
    of the increment's lookback window), one a second."""
    shutil.copytree(drop, target)
    crm = target / "crm"
    day = END - timedelta(days=60)
    old = crm / day.isoformat()
    old.mkdir()
    noon = datetime.combine(day, time(12), tzinfo=UTC)
    for entity, key in CLONED.items():
        [base] = [p for p in crm.iterdir() if p.is_file() and p.name.split(".", 1)[0] == entity]
        fields, rows = _read(base)
        live = [r for r in rows if str(r.get("is_deleted")).lower() not in ("true", "1")]
        clones = []
        for i in range(CLONES):  # one a second: a list of its own, not one long tie
            moment = (noon + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            times = {k: moment for k in ("created_at", "updated_at") if k in fields}
            clones.append({**live[i % len(live)], key: str(9_000_000 + i), **times})
        _write(old / base.name, fields, clones)
    return target


@pytest.fixture(scope="module")
def measured(admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The bench run on the tiny company (report files and all), then both sources on the longer history."""
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


def test_report_has_both_nights_of_both_sources(measured: dict[str, Any]) -> None:
    json_path, report = measured["json_path"], measured["report"]
    assert json_path.name.startswith("api-bench-") and json_path.with_suffix(".md").read_text() == measured["markdown"]
    [t] = report["sizes"]
    assert t["size"] == "T" and t["accounts"] == ACCOUNTS
    assert t["history_crm_rows"] > 0 and t["change_crm_rows"] > 0
    assert set(t["sources"]) == set(SOURCES)
    for source, r in t["sources"].items():
        for night in ("full", "increment"):
            n = r[night]
            assert n["requests"] == n["served_requests"] > 0, (source, night)  # the connector's count is the fake's
            assert n["error_answers"] == 0  # the raised limits never throttled
            assert sum(n["requests_by_kind"].values()) == sum(n["requests_by_endpoint"].values()) == n["requests"]
            assert n["rows_landed"] > 0 and n["wall_seconds"] > 0
            rate = DOCUMENTED_LIMIT[source]["rate"]
            assert n["documented_limit_seconds"] == round(n["requests"] / rate, 1)
        assert r["increment_requests_per_changed_row"] == round(r["increment"]["requests"] / t["change_crm_rows"], 3)
    assert "| T | amocrm | full |" in measured["markdown"] and "| T | bitrix24 | increment |" in measured["markdown"]


@pytest.mark.parametrize("source", SOURCES)
def test_the_increment_costs_the_change_not_the_history(measured: dict[str, Any], source: str) -> None:
    short = measured["report"]["sizes"][0]["sources"][source]
    long = measured["longer"][source]
    # the longer history costs the full extraction more requests...
    assert long["full"]["requests"] >= short["full"]["requests"] + 12
    assert long["full"]["rows_landed"] >= short["full"]["rows_landed"] + 4 * CLONES
    # ...but the same change costs the increment the same requests for the changes and the small
    # lists, and lands the same rows
    for kind in ("changes", "whole_lists"):
        assert long["increment"]["requests_by_kind"][kind] == short["increment"]["requests_by_kind"][kind], kind
    assert long["increment"]["rows_landed"] == short["increment"]["rows_landed"]
    # far fewer change requests than the full extraction of the longer history
    assert long["increment"]["requests_by_kind"]["changes"] * 5 <= long["full"]["requests_by_kind"]["changes"]


@pytest.mark.parametrize("source", SOURCES)
def test_the_increments_total_requests_do_not_grow_with_the_history(measured: dict[str, Any], source: str) -> None:
    """amoCRM: not at all. Bitrix24 keeps no list of deletions: each night checks the live ids it did
    not read, 2,500 a request (batches of 50 `@ID` lists of 50), so 4,000 more records over four
    lists may cost it at most one more request per list, where an id scan would cost 80."""
    short = measured["report"]["sizes"][0]["sources"][source]
    long = measured["longer"][source]
    grown = long["increment"]["requests"] - short["increment"]["requests"]
    assert 0 <= grown <= (0 if source == "amocrm" else len(CLONED)), grown
    assert long["increment"]["requests"] * 2 <= long["full"]["requests"]


def test_the_command_refuses_an_unknown_source_before_touching_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from b2b_pipeline.cli import app

    result = CliRunner().invoke(
        app, ["bench", "--api", "--source", "hubspot"], env={"B2B_HOME": str(tmp_path / "home")}
    )
    assert result.exit_code == 2 and "amocrm, bitrix24" in result.output
    assert not (tmp_path / "home").exists()
