"""Every written row obeys the file-drop contract (filedrop/spec.py, docs/sources.md)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from b2b_pipeline.filedrop.spec import CANONICAL_STAGE_KEYS
from b2b_pipeline.generate import generate_company

START = datetime(2024, 1, 1, tzinfo=UTC)
HORIZON = datetime(2026, 11, 26, tzinfo=UTC)


def test_every_row_obeys_the_contract(shape_drop, tools):
    bad = []
    for f in shape_drop.files:
        for line, row in f.rows:
            p = tools.problems(f.entity, row, f.delimiter == ";")
            if p:
                bad.append((f.path.name, line, p))
    assert not bad, bad[:5]
    assert shape_drop.summary.bad_rows == 0


def test_summary_counts_what_was_written(shape_drop):
    read = Counter()
    for f in shape_drop.files:
        read[f.entity.name] += len(f.rows)
    assert dict(read) == {k: v for k, v in shape_drop.summary.rows.items() if v}
    assert sorted(shape_drop.summary.files) == sorted(f.path for f in shape_drop.files)


def test_file_formats(shape_drop):
    out = shape_drop.out
    for p in (out / "crm").glob("*.csv"):
        raw = p.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
        assert raw.split(b"\n", 1)[0].count(b",") > 0
    for p in (out / "billing").glob("*.csv"):
        raw = p.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), p
        assert b"\r" not in raw
        assert raw.split(b"\n", 1)[0].count(b";") > 0
    # decimal commas in billing amounts, decimal points in CRM amounts
    billing = {f.entity.name: f for f in shape_drop.files if f.path.parent.name == "billing"}
    assert all("," in r["amount_total"] for _, r in billing["invoices"].rows)
    assert all("," in r["rate"] for _, r in billing["fx_rates"].rows)
    crm = {f.entity.name: f for f in shape_drop.files if f.path.parent.name == "crm"}
    assert all("." in r["amount"] for _, r in crm["deals"].rows)
    # activities are JSON Lines, every value a string or null
    lines = (out / "crm" / "activities.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines and all(isinstance(v, str | None) for v in json.loads(lines[0]).values())
    # company names with straight quotes survive the CSV quoting
    assert any('"' in r["name"] for _, r in crm["accounts"].rows)


def test_references_resolve(shape_drop):
    st = shape_drop.state
    accounts, deals, contacts = st["accounts"], st["deals"], st["contacts"]
    users = {k[0] for k in st["users"]}
    stages = {k[0] for k in st["stages"]}
    for d in deals.values():
        assert (d["account_id"],) in accounts
        assert d["owner_id"] in users and d["stage_id"] in stages
    for k in st["deal_stage_history"]:
        assert (k[0],) in deals and k[1] in stages
    for k in st["deal_contacts"]:
        assert (k[0],) in deals and (k[1],) in contacts
    for a in st["activities"].values():
        assert not a["deal_id"] or (a["deal_id"],) in deals
        assert not a["contact_id"] or (a["contact_id"],) in contacts
    for s in st["subscriptions"].values():
        assert (s["customer_id"],) in st["customers"]
    for i in st["invoices"].values():
        assert (i["customer_id"],) in st["customers"]
        assert not i["subscription_id"] or (i["subscription_id"],) in st["subscriptions"]
        assert not i["deal_id"] or deals[(i["deal_id"],)]["status"] == "won"


def test_times_are_inside_the_period_and_in_order(shape_drop, tools):
    ts = tools.parse_ts
    for f in shape_drop.files:
        for _, row in f.rows:
            if "updated_at" in row:
                assert START <= ts(row["updated_at"]) < HORIZON
                if row.get("created_at"):
                    assert ts(row["created_at"]) <= ts(row["updated_at"])
            if f.entity.name == "deal_stage_history":
                assert START <= ts(row["entered_at"]) < HORIZON
    for i in shape_drop.state["invoices"].values():
        if i["paid_at"]:
            assert ts(i["issued_at"]) < ts(i["paid_at"]) <= ts(i["updated_at"])


def test_statuses_are_consistent(shape_drop):
    st = shape_drop.state
    stages = {k[0]: r for k, r in st["stages"].items()}
    for d in st["deals"].values():
        canonical = stages[d["stage_id"]]["canonical_stage"]
        assert (d["closed_at"] != "") == (d["status"] != "open")
        assert (canonical == "lost") == (d["status"] == "lost")
        if d["status"] == "won":
            assert canonical in ("closing", "post_sale")
    for s in st["subscriptions"].values():
        assert (s["canceled_at"] != "") == (s["status"] == "canceled")
    for i in st["invoices"].values():
        if i["status"] == "paid":
            assert i["amount_paid"] == i["amount_total"]
        else:
            assert i["amount_paid"] == "0,00" and i["paid_at"] == ""


def test_stages_map_to_every_canonical_stage(shape_drop):
    rows = list(shape_drop.state["stages"].values())
    pipelines = {r["pipeline_id"] for r in rows}
    assert pipelines == {"new_business", "expansion"}
    assert any(any("А" <= ch <= "я" for ch in r["stage_name"]) for r in rows)
    for p in pipelines:
        mine = sorted((r for r in rows if r["pipeline_id"] == p), key=lambda r: int(r["display_order"]))
        assert {r["canonical_stage"] for r in mine} == {*CANONICAL_STAGE_KEYS, "lost"}
        probs = [float(r["probability"]) for r in mine if r["canonical_stage"] != "lost"]
        assert probs == sorted(probs) and all(0 <= x <= 1 for x in probs)
        for r in mine:
            if r["canonical_stage"] == "lost":
                assert float(r["probability"]) == 0
            if r["canonical_stage"] in ("closing", "post_sale"):
                assert float(r["probability"]) == 1


def test_error_rate_makes_that_share_of_rows_bad(tmp_path, tools):
    summary = generate_company(tmp_path, seed=3, accounts=150, error_rate=0.05, nightly_days=2, gzip=True)
    files = tools.drop_files(tmp_path)
    total = sum(len(f.rows) for f in files)
    kinds: Counter[str] = Counter()
    bad = 0
    for f in files:
        for _, row in f.rows:
            p = tools.problems(f.entity, row, f.delimiter == ";")
            bad += bool(p)
            kinds.update(x.split(" ")[1] for x in p)
    assert bad == summary.bad_rows
    assert 0.04 <= bad / total <= 0.06
    assert {"missing", "unparseable:", "not", "negative"} <= set(kinds)
    # still gzip files the reader opens
    assert all(gzip.decompress(p.read_bytes()) for p in summary.files)


def test_horizon_is_respected_at_any_end(tmp_path, tools):
    end = datetime(2024, 9, 30, tzinfo=UTC)
    generate_company(tmp_path, seed=1, accounts=60, end=end.date())
    limit = end + timedelta(days=1)
    for f in tools.drop_files(tmp_path):
        for _, row in f.rows:
            t = tools.version_time(f.entity, row)
            assert (t < limit.date()) if f.entity.name == "fx_rates" else (t < limit)
