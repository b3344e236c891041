"""Fixtures for the generator tests: generated drops, and tools that read a drop back independently.

The reading and checking here uses only the contract (`filedrop.spec`) and docs/sources.md /
docs/metrics.md rules, never the generator's internals, so the tests can catch the generator
writing something the contract does not allow.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import SimpleNamespace

import pytest

from b2b_pipeline.filedrop.spec import CANONICAL_STAGE_KEYS, ENTITIES, Entity, Kind
from b2b_pipeline.generate import generate_company

ENTITY_BY_NAME = {e.name: e for e in ENTITIES}
DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
NUMBER_COMMA = re.compile(r"^-?\d+([.,]\d+)?$")
INTEGER = re.compile(r"^-?\d+$")
BOOLEANS = {"true", "false", "1", "0", ""}
LEVEL = {k: i + 1 for i, k in enumerate(CANONICAL_STAGE_KEYS)}
START, END = date(2024, 1, 1), date(2026, 11, 25)
SHAPE_ACCOUNTS = 1000
SHAPE_SEED = 7


# ---------------------------------------------------------------- reading files
@dataclass
class DropFile:
    path: Path
    entity: Entity
    folder_date: date | None
    delimiter: str  # "," or ";" for CSV, "" for JSON Lines
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (line, row)


def _entity_of(path: Path) -> Entity:
    name = path.name
    for suffix in (".gz", ".csv", ".jsonl"):
        name = name.removesuffix(suffix)
    return ENTITY_BY_NAME[name]


def read_file(path: Path, folder_date: date | None = None) -> DropFile:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    e = _entity_of(path)
    if ".jsonl" in path.name:
        f = DropFile(path, e, folder_date, "")
        for i, line in enumerate(text.splitlines(), start=1):
            obj = json.loads(line)
            f.rows.append((i, {k: ("" if v is None else v) for k, v in obj.items()}))
        return f
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    f = DropFile(path, e, folder_date, delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = next(reader)
    assert tuple(columns) == e.column_names, f"{path}: header {columns}"
    for row in reader:
        assert len(row) == len(columns), f"{path} line {reader.line_num}: {row}"
        f.rows.append((reader.line_num, dict(zip(columns, row, strict=True))))
    return f


def drop_files(root: Path) -> list[DropFile]:
    """Every entity file of a drop, base files first, then the day folders in date order."""
    base: list[DropFile] = []
    daily: list[DropFile] = []
    for system in ("crm", "billing"):
        folder = root / system
        for p in sorted(folder.iterdir()):
            if p.is_file():
                base.append(read_file(p))
            elif DAY_DIR.match(p.name):
                d = date.fromisoformat(p.name)
                daily.extend(read_file(q, d) for q in sorted(p.iterdir()))
    daily.sort(key=lambda f: (f.folder_date, str(f.path)))
    return base + daily


# ---------------------------------------------------------------- the contract, checked
def parse_ts(text: str) -> datetime:
    if "T" not in text:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_number(text: str, decimal_comma: bool) -> Decimal:
    if not (NUMBER_COMMA if decimal_comma else NUMBER).match(text):
        raise ValueError(f"not a number: {text!r}")
    return Decimal(text.replace(",", "."))


def problems(e: Entity, row: dict[str, str], decimal_comma: bool) -> list[str]:
    """What is wrong with `row` by the contract (empty when nothing)."""
    out = []
    for c in e.columns:
        v = row.get(c.name, "")
        required = c.required or (c.required_when is not None and row.get(c.required_when[0]) in c.required_when[1])
        if v == "":
            if required:
                out.append(f"{c.name} missing")
            continue
        try:
            if c.kind is Kind.TIMESTAMP:
                parse_ts(v)
            elif c.kind is Kind.DATE:
                if len(v) != 10:
                    raise ValueError(v)
                date.fromisoformat(v)
            elif c.kind in (Kind.NUMBER, Kind.INTEGER):
                if c.kind is Kind.INTEGER and not INTEGER.match(v):
                    raise ValueError(v)
                n = parse_number(v, decimal_comma)
                if c.non_negative and n < 0:
                    out.append(f"{c.name} negative")
                if c.min_value is not None and n < Decimal(str(c.min_value)):
                    out.append(f"{c.name} below min")
                if c.max_value is not None and n > Decimal(str(c.max_value)):
                    out.append(f"{c.name} above max")
            elif c.kind is Kind.BOOLEAN and v.lower() not in BOOLEANS:
                raise ValueError(v)
        except (ValueError, InvalidOperation):
            out.append(f"{c.name} unparseable: {v!r}")
        if c.allowed and v not in c.allowed:
            out.append(f"{c.name} not allowed: {v!r}")
    return out


# ---------------------------------------------------------------- latest state
def version_time(e: Entity, row: dict[str, str]) -> datetime | date:
    if "updated_at" in row:
        return parse_ts(row["updated_at"])
    if e.name == "deal_stage_history":
        return parse_ts(row["entered_at"])
    return date.fromisoformat(row["rate_date"])


def latest_state(files: list[DropFile]) -> dict[str, dict[tuple, dict[str, str]]]:
    """Latest version per key of every entity, by the docs/sources.md rules (files in load order)."""
    best: dict[str, dict[tuple, tuple]] = defaultdict(dict)
    for order, f in enumerate(files):
        e = f.entity
        for line, row in f.rows:
            key = tuple(row[k] for k in e.key)
            rank = (parse_ts(row["updated_at"]), order, line) if e.versioned else (order, line)
            old = best[e.name].get(key)
            if old is None or rank > old[0]:
                best[e.name][key] = (rank, row)
    return {name: {k: v[1] for k, v in rows.items()} for name, rows in best.items()}


# ---------------------------------------------------------------- statistical shape
def _live(rows: dict[tuple, dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows.values() if r.get("is_deleted", "").lower() not in ("true", "1")]


def _month_end(d: date) -> date:
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def shape(state: dict[str, dict[tuple, dict[str, str]]], accounts: int) -> SimpleNamespace:
    """The statistics docs/generator.md documents, measured on a drop's latest state."""
    s = SimpleNamespace()
    stages = {r["stage_id"]: r for r in state["stages"].values()}
    level = {sid: LEVEL.get(r["canonical_stage"], 0) for sid, r in stages.items()}
    deals = _live(state["deals"])
    deal_ids = {d["deal_id"] for d in deals}
    s.deals_per_account = len(deals) / accounts
    s.rows_per_account = sum(len(v) for v in state.values()) / accounts
    status = Counter(d["status"] for d in deals)
    s.status = status
    s.win_rate = status["won"] / (status["won"] + status["lost"])
    s.open_share = status["open"] / len(deals)
    history: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for r in state["deal_stage_history"].values():
        if r["deal_id"] in deal_ids:
            history[r["deal_id"]].append((parse_ts(r["entered_at"]), r["stage_id"]))
    skips = regressions = post_sale = 0
    lost_at: Counter[int] = Counter()
    s.history_ok = True
    for d in deals:
        entries = sorted(history[d["deal_id"]])
        s.history_ok &= bool(entries) and entries[0][0] == parse_ts(d["created_at"])
        s.history_ok &= entries[-1][1] == d["stage_id"]
        levels = [level[sid] for _, sid in entries if level[sid] > 0]
        if any(b > a + 1 for a, b in itertools.pairwise(levels)):
            skips += 1
        if any(b < a for a, b in itertools.pairwise(levels)):
            regressions += 1
        if d["status"] == "lost":
            s.history_ok &= level[entries[-1][1]] == 0
            lost_at[levels[-1]] += 1
        if d["status"] == "won":
            s.history_ok &= max(levels) >= LEVEL["closing"]
            post_sale += levels[-1] == LEVEL["post_sale"]
        elif LEVEL["post_sale"] in levels or (d["status"] == "open" and max(levels) >= LEVEL["closing"]):
            s.history_ok = False
    s.post_sale_share_of_won = post_sale / status["won"]
    s.skip_share = skips / len(deals)
    s.regression_share = regressions / len(deals)
    n_lost = sum(lost_at.values())
    s.loss_share_by_stage = {k: lost_at[LEVEL[k]] / n_lost for k in CANONICAL_STAGE_KEYS[:5]}
    # first touch and cycle length
    first_activity: dict[str, datetime] = {}
    for a in _live(state["activities"]):
        if a["deal_id"]:
            t = parse_ts(a["occurred_at"])
            if a["deal_id"] not in first_activity or t < first_activity[a["deal_id"]]:
                first_activity[a["deal_id"]] = t
    before = 0
    cycles = []
    for d in deals:
        created = parse_ts(d["created_at"])
        touch = min(created, first_activity.get(d["deal_id"], created))
        before += touch < created
        if d["status"] == "won":
            cycles.append((parse_ts(d["closed_at"]).date() - touch.date()).days)
    s.first_touch_before_share = before / len(deals)
    s.median_cycle_days = statistics.median(cycles)
    s.expansion_share = sum(d["pipeline_id"] == "expansion" for d in deals) / len(deals)
    cur = Counter(d["currency"] for d in deals)
    s.currency_share = {c: n / len(deals) for c, n in cur.items()}
    # contacts on deals
    roles: dict[str, list[str]] = defaultdict(list)
    for r in state["deal_contacts"].values():
        roles[r["deal_id"]].append(r["role"])
    s.contacts_per_deal = sum(len(roles[d["deal_id"]]) for d in deals) / len(deals)
    s.decision_maker_share = sum("decision_maker" in roles[d["deal_id"]] for d in deals) / len(deals)
    # accounts and names
    accts = _live(state["accounts"])
    s.cyrillic_name_share = sum(bool(re.search("[А-Яа-яЁё]", a["name"])) for a in accts) / len(accts)
    s.deleted_account_share = 1 - len(accts) / len(state["accounts"])
    # billing customers matched to CRM accounts, docs/metrics.md rules
    crm = {a["account_id"]: a for a in accts}
    by_tax: dict[str, list[str]] = defaultdict(list)
    by_domain: dict[str, list[str]] = defaultdict(list)
    for a in accts:
        digits = re.sub(r"\D", "", a["tax_id"])
        if digits:
            by_tax[digits].append(a["account_id"])
        if a["domain"]:
            by_domain[a["domain"].lower()].append(a["account_id"])
    method: dict[str, str] = {}
    unified: dict[str, str] = {}
    for c in state["customers"].values():
        digits = re.sub(r"\D", "", c["tax_id"])
        dom = c["email_domain"].lower().removeprefix("www.")
        if c["crm_account_id"] in crm:
            m, acc = "crm_account_id", c["crm_account_id"]
        elif digits and len(by_tax.get(digits, [])) == 1:
            m, acc = "tax_id", by_tax[digits][0]
        elif dom and len(by_domain.get(dom, [])) == 1:
            m, acc = "domain", by_domain[dom][0]
        else:
            m, acc = "unmatched", "billing:" + c["customer_id"]
        method[c["customer_id"]] = m
        unified[c["customer_id"]] = acc
    mix = Counter(method.values())
    s.match_share = {m: mix[m] / len(method) for m in ("crm_account_id", "tax_id", "domain", "unmatched")}
    per_account = Counter(a for a in unified.values() if not a.startswith("billing:"))
    s.accounts_with_two_customers = sum(n >= 2 for n in per_account.values())
    # subscriptions: churn per month as marts.retention_monthly computes it
    subs = state["subscriptions"].values()
    s.subscription_status = Counter(r["status"] for r in subs)
    spans = []
    for r in subs:
        if r["status"] == "trialing":
            continue
        started = parse_ts(r["started_at"]).date()
        canceled = parse_ts(r["canceled_at"]).date() if r["canceled_at"] else None
        spans.append((unified[r["customer_id"]], started, canceled))

    def active(x: date) -> set[str]:
        return {acc for acc, st, cn in spans if st <= x and (cn is None or cn > x)}

    churn = []
    m = date(START.year, START.month, 1)
    while m <= END.replace(day=1):
        prev_end, this_end = m - timedelta(days=1), _month_end(m)
        if this_end > END:
            this_end = END
        s_set, e_set = active(prev_end), active(this_end)
        if len(s_set) >= 30:
            churn.append((len(s_set), len(s_set - e_set) / len(s_set)))
        m = this_end + timedelta(days=1)
    s.monthly_churn = churn  # (customers at the start, churn rate) of months with >= 30 customers
    s.mean_monthly_churn = statistics.mean(rate for _, rate in churn)
    s.max_monthly_churn_100 = max(rate for n, rate in churn if n >= 100)
    # invoices
    inv = list(state["invoices"].values())
    s.invoice_status = Counter(r["status"] for r in inv)
    paid = [r for r in inv if r["status"] == "paid"]
    s.paid_share = len(paid) / len(inv)
    s.late_share = sum(r["due_at"] != "" and parse_ts(r["paid_at"]) > parse_ts(r["due_at"]) for r in paid) / len(paid)
    msk_midnight = [r for r in paid if r["paid_at"].endswith("+03:00") and r["paid_at"][11:13] == "00"]
    s.msk_midnight_share = len(msk_midnight) / len(paid)
    s.msk_midnight_previous_utc_day = sum(
        parse_ts(r["paid_at"]).date() < date.fromisoformat(r["paid_at"][:10]) for r in msk_midnight
    )
    s.deal_invoices = sum(r["deal_id"] != "" for r in inv)
    s.timestamp_styles = Counter(
        "msk" if v.endswith("+03:00") else ("z" if v.endswith("Z") else "naive") for r in inv for v in [r["issued_at"]]
    )
    # the sales team and exchange rates
    users = list(state["users"].values())
    s.users = len(users)
    s.inactive_users = sum(u["is_active"] in ("false", "0") for u in users)
    s.teams = len({u["team"] for u in users})
    fx = state["fx_rates"]
    s.fx_currencies = {k[1] for k in fx}
    fx_dates = {date.fromisoformat(k[0]) for k in fx}
    days = [START + timedelta(days=i) for i in range((END - START).days + 1)]
    s.fx_missing_weekdays = sum(d not in fx_dates for d in days if d.weekday() < 5)
    s.fx_missing_weekend_days = sum(d not in fx_dates for d in days if d.weekday() >= 5)
    s.fx_weekend_days = sum(d.weekday() >= 5 for d in days)
    rates = defaultdict(list)
    for (_, c), r in sorted(fx.items()):
        rates[c].append(float(r["rate"].replace(",", ".")))
    s.fx_range = {c: (min(v), max(v)) for c, v in rates.items()}
    return s


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def shape_drop(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A 1,000-account drop with the default period, read back once for all shape tests."""
    out = tmp_path_factory.mktemp("shape")
    summary = generate_company(out, seed=SHAPE_SEED, accounts=SHAPE_ACCOUNTS)
    files = drop_files(out)
    state = latest_state(files)
    return SimpleNamespace(out=out, summary=summary, files=files, state=state, shape=shape(state, SHAPE_ACCOUNTS))


@pytest.fixture(scope="session")
def tools() -> SimpleNamespace:
    """The drop-reading helpers of this conftest, for the test modules."""
    return SimpleNamespace(
        read_file=read_file,
        drop_files=drop_files,
        problems=problems,
        latest_state=latest_state,
        version_time=version_time,
        parse_ts=parse_ts,
        shape=shape,
    )
