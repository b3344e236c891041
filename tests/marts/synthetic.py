"""A random but valid file drop of realistic size, for timing the reference and checking mart identities.

Not a hand case: nothing here is expected by value. It writes every format the
drop allows (`,` and `;` CSV with decimal commas, BOM, JSON Lines, gzip, dated
change folders) and records after the as-of date, so the size test walks all
code paths.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from b2b_pipeline.filedrop.spec import entity

START = datetime(2024, 7, 1, tzinfo=UTC)
END = datetime(2026, 7, 20, tzinfo=UTC)
STAGES = [
    ("st_lead", "lead", 0.05),
    ("st_qual", "qualification", 0.1),
    ("st_rel", "relationship", 0.2),
    ("st_prop", "proposal", 0.4),
    ("st_neg", "negotiation", 0.6),
    ("st_close", "closing", 0.9),
    ("st_post", "post_sale", 1.0),
    ("st_lost", "lost", 0.0),
]


def _ts(moment: datetime, rng: random.Random) -> str:
    """A timestamp in one of the allowed spellings (UTC, Z, +03:00, no offset)."""
    style = rng.random()
    if style < 0.4:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style < 0.7:
        return moment.astimezone(UTC).isoformat()
    if style < 0.85:
        return (moment + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S") + "+03:00"
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _write(path: Path, name: str, rows: list[dict], fmt: str) -> None:
    """fmt: csv, csv;, jsonl, jsonl.gz, csv.gz"""
    system = "crm" if "crm" in path.parts[-2:] else "billing"
    columns = list(entity(system, name).column_names)
    path.mkdir(parents=True, exist_ok=True)
    if fmt.startswith("jsonl"):
        text = "".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows)
    else:
        delimiter = ";" if fmt == "csv;" else ","
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            values = []
            for c in columns:
                v = r.get(c)
                if v is None:
                    v = ""
                elif isinstance(v, bool):
                    v = "true" if v else "false"
                elif isinstance(v, float) and delimiter == ";":
                    v = f"{v:.2f}".replace(".", ",")
                elif isinstance(v, float):
                    v = f"{v:.2f}"
                values.append(v)
            writer.writerow(values)
        text = buffer.getvalue()
    data = ("\ufeff" if fmt == "csv;" else "") + text
    suffix = "jsonl" if fmt.startswith("jsonl") else "csv"
    if fmt.endswith(".gz"):
        (path / f"{name}.{suffix}.gz").write_bytes(gzip.compress(data.encode("utf-8")))
    else:
        (path / f"{name}.{suffix}").write_text(data, encoding="utf-8")


def write_synthetic_drop(root: Path, accounts: int = 2000, seed: int = 1) -> int:
    """Write a drop under `root`; returns the number of rows written."""
    rng = random.Random(seed)
    span = (END - START).total_seconds()

    def moment(after: datetime = START, before: datetime = END) -> datetime:
        lo, hi = after.timestamp(), min(before, END).timestamp()
        return datetime.fromtimestamp(rng.uniform(lo, max(lo, hi)), tz=UTC).replace(microsecond=0)

    crm, billing = root / "crm", root / "billing"
    total = 0

    stage_rows = [
        {
            "stage_id": sid,
            "pipeline_id": "p1",
            "stage_name": key.title(),
            "display_order": i + 1,
            "probability": prob,
            "canonical_stage": key,
            "updated_at": "2024-01-01T00:00:00Z",
        }
        for i, (sid, key, prob) in enumerate(STAGES)
    ]
    _write(crm, "stages", stage_rows, "csv")
    total += len(stage_rows)

    account_rows, account_created = [], {}
    for i in range(accounts):
        created = START + timedelta(seconds=rng.uniform(0, span * 0.6))
        account_created[f"A{i}"] = created
        account_rows.append(
            {
                "account_id": f"A{i}",
                "name": f"ООО Компания {i}",
                "tax_id": f"77{i:08d}",
                "domain": f"company{i}.ru",
                "created_at": _ts(created, rng),
                "updated_at": _ts(created, rng),
                "is_deleted": rng.random() < 0.01,
            }
        )
    _write(crm, "accounts", account_rows, "csv")
    total += len(account_rows)

    deal_rows, history_rows, activity_rows, deal_changes = [], [], [], []
    won_deals: list[tuple[str, str, datetime, float]] = []
    for i in range(accounts * 6):
        account_id = f"A{rng.randrange(accounts)}" if rng.random() > 0.002 else "A_missing"
        created = moment(account_created.get(account_id, START))
        path_len = rng.randint(1, 7)
        stages = sorted(rng.sample(range(7), path_len))  # skips stages
        entered = created
        for s in stages:
            entered = entered + timedelta(days=rng.uniform(0, 12))
            history_rows.append({"deal_id": f"D{i}", "stage_id": STAGES[s][0], "entered_at": _ts(entered, rng)})
        fate = rng.random()
        status = "won" if fate < 0.3 else "lost" if fate < 0.6 else "open"
        closed = entered + timedelta(days=rng.uniform(0, 20)) if status != "open" else None
        currency = rng.choice(["RUB", "RUB", "RUB", "USD", "EUR"])
        amount = round(rng.uniform(1000, 500000), 2)
        stage_id = STAGES[stages[-1]][0] if status != "lost" else "st_lost"
        updated = closed or entered
        row = {
            "deal_id": f"D{i}",
            "account_id": account_id,
            "stage_id": stage_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "created_at": _ts(created, rng),
            "closed_at": _ts(closed, rng) if closed else None,
            "updated_at": _ts(updated, rng),
            "is_deleted": rng.random() < 0.01,
        }
        if status == "won" and rng.random() < 0.3:
            # an earlier open version in the root file, the close in a dated change folder
            deal_rows.append({**row, "status": "open", "closed_at": None, "updated_at": _ts(entered, rng)})
            deal_changes.append(row)
        else:
            deal_rows.append(row)
        if status == "won" and closed is not None:
            won_deals.append((f"D{i}", account_id, closed, amount))
        for _ in range(rng.randint(0, 12)):
            occurred = created + timedelta(days=rng.uniform(-30, 60))
            activity_rows.append(
                {
                    "activity_id": f"ACT{len(activity_rows)}",
                    "deal_id": f"D{i}",
                    "account_id": account_id,
                    "channel": rng.choice(["email", "call", "meeting", "webinar", "social", "event", "other"]),
                    "occurred_at": _ts(occurred, rng),
                    "updated_at": _ts(max(occurred, START), rng),
                    "is_deleted": rng.random() < 0.02,
                }
            )
    _write(crm, "deals", deal_rows, "csv")
    _write(crm / "2026-06-01", "deals", deal_changes, "jsonl")
    _write(crm, "deal_stage_history", history_rows, "csv")
    _write(crm, "activities", activity_rows, "jsonl.gz")
    total += len(deal_rows) + len(deal_changes) + len(history_rows) + len(activity_rows)

    customer_rows, customer_created = [], {}
    for i in range(int(accounts * 1.15)):
        a = rng.randrange(accounts)
        created = START + timedelta(seconds=rng.uniform(0, span * 0.7))
        way = rng.random()
        customer_rows.append(
            {
                "customer_id": f"C{i}",
                "name": f"Customer {i}",
                "crm_account_id": f"A{a}" if way < 0.5 else None,
                "tax_id": f"77-{a:08d}" if 0.5 <= way < 0.7 else None,
                "email_domain": f"WWW.Company{a}.ru" if 0.7 <= way < 0.85 else f"other{i}.com",
                "currency": "RUB",
                "created_at": _ts(created, rng),
                "updated_at": _ts(created, rng),
            }
        )
        customer_created[f"C{i}"] = created
    _write(billing, "customers", customer_rows, "csv")
    total += len(customer_rows)

    sub_rows, invoice_rows = [], []
    for customer_id, created in customer_created.items():
        for _ in range(rng.choice([0, 1, 2, 2, 3])):
            started = moment(created, created + timedelta(days=300))
            status = rng.choice(["active", "active", "past_due", "canceled", "trialing"])
            canceled = moment(started) if status == "canceled" or rng.random() < 0.1 else None
            mrr = round(rng.uniform(1000, 50000), 2)
            currency = rng.choice(["RUB", "RUB", "USD"])
            sid = f"S{len(sub_rows)}"
            sub_rows.append(
                {
                    "subscription_id": sid,
                    "customer_id": customer_id,
                    "status": status,
                    "mrr_amount": mrr,
                    "currency": currency,
                    "started_at": _ts(started, rng),
                    "canceled_at": _ts(canceled, rng) if canceled else None,
                    "updated_at": _ts(canceled or started, rng),
                }
            )
            if status == "trialing":
                continue
            issued = started
            while issued < (canceled or END):
                paid = rng.random() < 0.85
                paid_at = issued + timedelta(days=rng.uniform(0, 20)) if paid else None
                invoice_rows.append(
                    {
                        "invoice_id": f"I{len(invoice_rows)}",
                        "customer_id": customer_id,
                        "subscription_id": sid,
                        "status": "paid" if paid else rng.choice(["open", "void", "uncollectible", "draft"]),
                        "currency": currency,
                        "amount_total": mrr,
                        "amount_paid": mrr if paid else 0.0,
                        "issued_at": _ts(issued, rng),
                        "paid_at": _ts(paid_at, rng) if paid_at else None,
                        "updated_at": _ts(paid_at or issued, rng),
                    }
                )
                issued += timedelta(days=30)
    half = len(invoice_rows) // 2
    _write(billing, "subscriptions", sub_rows, "csv")
    _write(billing, "invoices", invoice_rows[:half], "csv;")
    _write(billing / "2026-03-01", "invoices", invoice_rows[half:], "csv.gz")
    total += len(sub_rows) + len(invoice_rows)

    fx_rows = []
    day = (START - timedelta(days=30)).date()
    while day <= END.date():
        if day.weekday() < 5:  # no rates at weekends: the latest earlier rate applies
            fx_rows.append({"rate_date": day.isoformat(), "currency": "USD", "rate": round(rng.uniform(70, 100), 4)})
            fx_rows.append({"rate_date": day.isoformat(), "currency": "EUR", "rate": round(rng.uniform(80, 110), 4)})
        day += timedelta(days=1)
    _write(billing, "fx_rates", fx_rows, "csv")
    total += len(fx_rows)
    assert date(2026, 6, 30) < END.date()
    return total
