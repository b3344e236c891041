"""An independent reference implementation of the six metric marts of docs/metrics.md, in plain Python.

It reads a file drop (docs/sources.md) directly, without the loader, the warehouse
or dbt, and was written from docs/metrics.md, docs/sources.md, docs/raw-layer.md and the
column contract of `b2b_pipeline.filedrop.spec` alone; it is the check on the
dbt models. It favours being obviously correct over speed: every record is a
dict, every mart a loop over months or deals.

    compute_marts(drop_dir, as_of, reporting_currency="RUB", *, fx_base_currency="RUB",
                  reporting_timezone="UTC", sales_pipelines=()) -> {mart name: DataFrame}
    compute_accounts(drop_dir, as_of, *, reporting_timezone="UTC") -> DataFrame
                                                     (one row per billing customer: its account and match_method)
    read_drop(drop_dir) -> Drop                      (parse once, then pass the Drop instead of a path)

The keyword settings are the deployment's reporting settings, the dbt vars of the
same names (`b2b_pipeline.transform.night_vars`):
- `reporting_currency` (ISO code): every money column is in it;
- `fx_base_currency`: the currency fx_rates quote in (`rate` = units of the base
  for one unit of `currency`);
- `reporting_timezone` (IANA name): every date and month is a calendar date on
  its wall clock, and the cutoff is its midnight;
- `sales_pipelines` (pipeline ids; empty = all): the deals the deal-based marts
  see.
The defaults (RUB, RUB, UTC, all) are the behaviour before these settings existed.

Output: the six marts with exactly docs/metrics.md's columns in its order, one row
per month from the section's first month through the as-of month (no gaps,
zeros included), ratios NaN where the denominator is 0, NULL counts as <NA>,
months and dates as `datetime.date`. A mart with no source rows at all is an
empty frame with the columns.

Account key (customer_value.account_key): the CRM `account_id` for an account
of the CRM, the billing `customer_id` for a billing-only account. customer_value
has extra columns `account_source` (`crm`/`billing`), `crm_account_id` (NULL for
billing-only) and `billing_customer_ids` (its billing customer ids, sorted,
comma-joined, "" when none) so that another side's keys can be mapped (see
compare.account_key_map_from_dim_accounts).

Decisions where the contract leaves room (each is deliberate; change it here
and in the hand cases together):

Reading the drop
 1. Files: `<entity>.csv|.jsonl[.gz]` directly in `crm/`/`billing/` or in a
    subfolder named `YYYY-MM-DD`; other subfolders and other file names
    (unknown entity, or an entity of the other system's folder) are refused
    and ignored. Load order: root files (both systems) first, then the dated
    folders in date order, within a folder files by name. A file that is not
    UTF-8, or a CSV whose header lacks a required column, is refused whole.
    Every file of the drop counts whatever its folder date: the folder date
    orders loading, it is not a data timestamp (this matters only for
    fx_rates, which have no updated_at).
 2. CSV delimiter: `;` when the header line has more `;` than `,`, else `,`.
    A BOM is dropped. Header names are stripped of surrounding blanks. A short
    row is padded with empty values; extra fields are ignored; a row of only
    empty fields (a blank line) is skipped.
 3. Values: empty (or JSON null) is NULL; text is kept as written (not
    stripped). Numbers: `[+-]digits[.digits][e±n]`; the decimal comma
    (`1234,50`) only in `;` files and only when the value has no `.`; any
    other form (thousands separators, `nan`, `1_000`) is unparseable.
    Booleans: `true/false/1/0` case-insensitive, empty = false. Timestamps:
    ISO 8601 by `datetime.fromisoformat`, no offset = UTC, kept as instants
    (in UTC); the "date" of a timestamp (close date, paid date, created date,
    cohort month, first-touch date, subscription start/cancel date, …) is its
    calendar date in the reporting time zone (`zone_date`).
    Dates: exactly `YYYY-MM-DD`. JSON numbers/booleans are read as their
    text (`true` -> "true").
 4. A row is dropped (the loader quarantines it) when any contract column
    breaks the contract: a required value missing (also `closed_at` of a
    won/lost deal, `paid_at` of a paid invoice), any typed column (required
    or not) unparseable, a value outside its list, a negative number where
    the contract says non-negative, a probability outside 0..1.
 5. Versions: a version with updated_at >= cutoff is ignored; of the rest the
    latest updated_at wins, ties broken by the later file in load order, then
    the later line (docs/raw-layer.md). If the winning version says
    is_deleted, the id is gone. fx_rates: the later file (then line) wins per
    (rate_date, currency). deal_stage_history: a set of (deal_id, stage_id,
    entered_at) events.

The cutoff: (as_of + 1 day) 00:00 on the wall clock of the reporting time zone
    (`cutoff_of`; with the default UTC, as_of + 1 day 00:00 UTC; with
    Europe/Moscow, as_of 21:00 UTC). Everything strictly before it counts:
    version updated_at, created_at, closes, stage entries, activities,
    payments, subscription starts and cancellations. Every date a mart uses is
    therefore <= the as-of date.
 6. Creation: an account, contact, deal or billing customer whose winning
    version has created_at >= cutoff does not exist yet.
 7. A deal is won (lost) only if its winning version says won (lost) AND its
    closed_at < cutoff. A won/lost version with closed_at >= cutoff (a close
    after the as-of date) is an OPEN deal as of the as-of date: it reaches
    stages only through its stage history, and it enters the weighted
    pipeline with the win probability of its version's stage_id (the "current
    source stage" is the deal's stage_id, whatever its status says). An
    `open` version with a closed_at is open; closed_at is ignored.
 8. Stage entries, activities, payments (paid_at), subscription starts and
    cancellations at or after the cutoff are ignored: an invoice paid at or
    after the cutoff is not paid, a subscription started at or after it does
    not exist, one canceled at or after it is not canceled.

Funnel and performance
 9. "Reached" uses the stage history only (a deal's current stage_id without a
    history row does not count), plus the won and post-sale rules of
    docs/metrics.md. History rows in a stage mapped to `lost` have no order and
    count for nothing. A stage id the stages entity (as of the cutoff) does not
    know, referenced by a counted history row or by an open deal of
    customer_value, raises UnknownStageError: the quality gate blocks a night
    with an unmapped stage.
10. Post-sale by invoice: the deal's CRM account, unified with its billing
    customers, has an invoice paid as of the cutoff whose paid date >= the
    deal's close date (any amount, also 0), both in the reporting time zone.
11. Deals whose account does not exist (missing, deleted, created after the
    cutoff) still count in sales_funnel and sales_performance_monthly (no
    customer is involved there) but are no customer's purchase: they are left
    out of repeat_purchase_monthly (its first month too) and customer_value.
12. First touch: the earlier of created_at and the earliest occurred_at of the
    (not deleted, before the cutoff) activities whose deal_id is the deal;
    activities linked only to the account do not count. cycle_days = close
    date - first-touch date in days, both dates in the reporting time zone
    (not clamped); avg and median are not rounded (the median of an even
    count is the mean of the middle two).

Accounts
13. Rule 1 looks only at existing CRM accounts (not deleted, created before
    the cutoff): a customer pointing to a deleted or unknown account falls
    through to rules 2 and 3. Rule 2 reduces BOTH tax ids to ASCII digits;
    rule 3 treats BOTH domains alike: stripped, lower-cased, one leading
    `www.` removed. "Exactly one CRM account" counts distinct existing
    accounts. Deleting a CRM account does not delete its deals (see 11).
14. Each unmatched billing customer is an account of its own, even when two
    share a tax id or domain.

Billing marts
15. Revenue: an invoice of an unknown billing customer counts in `revenue`
    (and in the first month), but in no customer's count nor in
    `revenue_new_customers`. paying_customers = unified accounts with >= 1
    paid invoice paid in the month (any amount). The first paid month is
    taken over all billing customers of the account.
16. Retention: the status of the winning version as of the cutoff decides
    `trialing` (a subscription trialing at the cutoff counts in no month, even
    if it is activated later); otherwise only started_at/canceled_at matter
    (a `canceled` subscription without canceled_at is active, per the
    letter). Subscriptions of unknown billing customers count nowhere. The
    end of the as-of month is evaluated on the cut-off data (which is the same
    as evaluating it on the as-of date). Start and cancel dates are dates in
    the reporting time zone.

Money
17. Rates: rate(X, D) = the `rate` of fx_rates (currency X, the latest
    rate_date <= D), in units of the base currency (`fx_base_currency`); the
    base is always 1, and an fx_rates row for the base itself is ignored, as
    are rows dated after the as-of date. An amount of currency C on day D in
    reporting currency R: C == R -> the amount unchanged (no rate needed);
    else amount x rate(C, D) / rate(R, D) (with R the base: amount x
    rate(C, D)). A rate needed and missing raises MissingFxRateError (the gate
    blocks such a night). Rates are looked up only for amounts a mart uses:
    won deals at the close date, paid invoices at the paid date, open deals
    (amount x probability, then converted) and active subscriptions of
    existing customers at the as-of date; D is a date in the reporting time
    zone. Currency codes are compared as written.

Sales pipelines
18. With `sales_pipelines` set (non-empty), a deal's pipeline is its
    `pipeline_id`, or when that is empty the `pipeline_id` of its current
    stage (the stage_id of its winning version, stages as of the cutoff; an
    empty pipeline_id with a stage the stages entity does not know raises
    UnknownStageError). A deal of another pipeline is left out as if it did
    not exist, from every deal-based measure: sales_funnel,
    sales_performance_monthly, repeat_purchase_monthly's purchases (and its
    first month), customer_value's weighted_open_pipeline, AND customer_value's
    "existing customer" (docs/metrics.md defines it through won deals: an
    account whose only won deals are in other pipelines, with no active
    subscription, has no row). The billing marts (revenue_monthly,
    retention_monthly, and post-sale by invoice, which looks at invoices) are
    unchanged; "new customer" of revenue_monthly is by first paid invoice, not
    by deals, so it is unchanged too.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import statistics
import sys
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from b2b_pipeline.filedrop.spec import CANONICAL_STAGE_KEYS, ENTITY_BY_NAME, SYSTEMS, Entity, Kind

from .compare import MART_COLUMNS

ENTITY_BY_ENTITY_NAME: dict[str, Entity] = {e.name: e for e in ENTITY_BY_NAME.values()}  # names are unique
STAGE_ORDER: dict[str, int] = {key: i + 1 for i, key in enumerate(CANONICAL_STAGE_KEYS)}
POST_SALE = STAGE_ORDER["post_sale"]
CLOSING = STAGE_ORDER["closing"]


class MissingFxRateError(ValueError):
    """An amount has no exchange rate on or before its date."""


class UnknownStageError(ValueError):
    """A stage id that the stages entity does not map."""


# --------------------------------------------------------------------------------------------------
# Reading a file drop
# --------------------------------------------------------------------------------------------------

_DATED_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class DropFile:
    path: Path
    entity: Entity
    fmt: str  # "csv" or "jsonl"
    folder_date: date | None


@dataclass
class Drop:
    """Every valid row of a drop, per entity name; each row a dict of typed values plus `_order`."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    files: list[DropFile] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    rejected_rows: int = 0

    def entity_rows(self, name: str) -> list[dict[str, Any]]:
        return self.rows.get(name, [])


def _entity_of_file_name(name: str) -> tuple[str, str] | None:
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    for fmt in ("csv", "jsonl"):
        if name.endswith("." + fmt):
            return name[: -len(fmt) - 1], fmt
    return None


def list_drop_files(drop_dir: Path) -> tuple[list[DropFile], list[tuple[Path, str]]]:
    """The entity files of a drop in load order, and the files refused by name."""
    files: list[DropFile] = []
    refused: list[tuple[Path, str]] = []
    for system in SYSTEMS:
        base = drop_dir / system
        if not base.is_dir():
            continue
        folders: list[tuple[date | None, Path]] = [(None, base)]
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            try:
                folder_date = date.fromisoformat(sub.name) if _DATED_FOLDER.match(sub.name) else None
            except ValueError:
                folder_date = None
            if folder_date is None:
                refused.append((sub, "not a dated folder"))
                continue
            folders.append((folder_date, sub))
        for folder_date, folder in folders:
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                parsed = _entity_of_file_name(path.name)
                entity = ENTITY_BY_NAME.get((system, parsed[0])) if parsed else None
                if parsed is None or entity is None:
                    refused.append((path, "not an entity file"))
                    continue
                files.append(DropFile(path, entity, parsed[1], folder_date))
    # root files first, then dated folders in date order (the sort is stable: system, folder, name)
    files.sort(key=lambda f: (f.folder_date is not None, f.folder_date or date.min))
    return files, refused


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _raw_records(text: str, fmt: str, entity: Entity) -> tuple[Iterator[tuple[int, dict | None]], bool]:
    """(line, raw dict or None for an unreadable row) of a file, and whether decimal commas are allowed.

    Raises ValueError when the file is refused whole.
    """
    if fmt == "jsonl":

        def jsonl() -> Iterator[tuple[int, dict | None]]:
            for line_no, line in enumerate(text.split("\n"), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    yield line_no, None
                    continue
                if not isinstance(obj, dict):
                    yield line_no, None
                    continue
                yield line_no, {str(k): _json_text(v) for k, v in obj.items()}

        return jsonl(), False

    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as exc:
        raise ValueError("empty file") from exc
    missing = [c for c in entity.required_names if c not in header]
    if missing:
        raise ValueError(f"header lacks required column(s) {missing}")

    def rows() -> Iterator[tuple[int, dict | None]]:
        for fields in reader:
            if all(f == "" for f in fields):
                continue
            padded = fields + [""] * (len(header) - len(fields))
            yield reader.line_num, dict(zip(header, padded, strict=False))

    return rows(), delimiter == ";"


def _parse(kind: Kind, text: str, decimal_comma: bool) -> Any:
    """The typed value of a non-empty text; raises ValueError when it is unparseable."""
    if kind is Kind.TEXT:
        return text
    value = text.strip()
    if kind is Kind.TIMESTAMP:
        if not value[:4].isdigit():
            raise ValueError(text)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if kind is Kind.DATE:
        if not _DATE.match(value):
            raise ValueError(text)
        return date.fromisoformat(value)
    if kind is Kind.NUMBER:
        if decimal_comma and "," in value and "." not in value:
            value = value.replace(",", ".", 1)
        if not _NUMBER.match(value):
            raise ValueError(text)
        return float(value)
    if kind is Kind.INTEGER:
        if not _INTEGER.match(value):
            raise ValueError(text)
        return int(value)
    if kind is Kind.BOOLEAN:
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(text)
    raise AssertionError(kind)


def _typed_row(entity: Entity, raw: dict[str, str | None], decimal_comma: bool) -> dict[str, Any] | None:
    """The row with typed values, or None when it breaks the contract (it would be quarantined)."""
    row: dict[str, Any] = {}
    for col in entity.columns:
        text = raw.get(col.name)
        if text is None or text == "":
            if col.required:
                return None
            if col.required_when is not None:
                other, values = col.required_when
                if raw.get(other) in values:
                    return None
            row[col.name] = False if col.kind is Kind.BOOLEAN else None
            continue
        try:
            value = _parse(col.kind, text, decimal_comma)
        except ValueError:
            return None
        if col.allowed and text not in col.allowed:
            return None
        if col.non_negative and value < 0:
            return None
        if col.min_value is not None and value < col.min_value:
            return None
        if col.max_value is not None and value > col.max_value:
            return None
        row[col.name] = value
    return row


def read_drop(drop_dir: Path | str) -> Drop:
    """Parse every entity file of a drop; rows that break the contract are dropped."""
    drop_dir = Path(drop_dir)
    files, refused = list_drop_files(drop_dir)
    drop = Drop(refused=refused)
    for file_index, f in enumerate(files):
        try:
            data = f.path.read_bytes()
            if f.path.name.endswith(".gz"):
                data = gzip.decompress(data)
            text = data.decode("utf-8-sig")
            records, decimal_comma = _raw_records(text, f.fmt, f.entity)
            parsed: list[dict[str, Any]] = []
            for line_no, raw in records:
                row = _typed_row(f.entity, raw, decimal_comma) if raw is not None else None
                if row is None:
                    drop.rejected_rows += 1
                    continue
                row["_order"] = (file_index, line_no)
                parsed.append(row)
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, ValueError, csv.Error) as exc:
            drop.refused.append((f.path, str(exc)))
            continue
        drop.files.append(f)
        drop.rows[f.entity.name].extend(parsed)
    return drop


# --------------------------------------------------------------------------------------------------
# The state as of the cutoff
# --------------------------------------------------------------------------------------------------


def zone_date(ts: datetime, zone: tzinfo) -> date:
    """The calendar date of an instant on the wall clock of `zone`."""
    return ts.astimezone(zone).date()


def cutoff_of(as_of: date, zone: tzinfo) -> datetime:
    """The cutoff of a run, in UTC: the day after the as-of date at 00:00 on the wall clock of `zone`."""
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def month_of(d: date) -> date:
    return d.replace(day=1)


def next_month(m: date) -> date:
    return date(m.year + (m.month == 12), m.month % 12 + 1, 1)


def month_end(m: date) -> date:
    return next_month(m) - timedelta(days=1)


def months_between(first: date, last: date) -> list[date]:
    out, m = [], month_of(first)
    while m <= month_of(last):
        out.append(m)
        m = next_month(m)
    return out


def latest_versions(drop: Drop, name: str, cutoff: datetime) -> dict[tuple, dict[str, Any]]:
    """The winning version of every id as of the cutoff, deleted ids and not-yet-created records removed."""
    entity = ENTITY_BY_ENTITY_NAME[name]
    best: dict[tuple, dict[str, Any]] = {}
    for row in drop.entity_rows(name):
        if row["updated_at"] >= cutoff:
            continue
        key = tuple(row[c] for c in entity.key)
        current = best.get(key)
        if current is None or (row["updated_at"], row["_order"]) > (current["updated_at"], current["_order"]):
            best[key] = row
    return {
        key: row
        for key, row in best.items()
        if not (entity.deletable and row["is_deleted"])
        and not ("created_at" in entity.column_names and row["created_at"] >= cutoff)
    }


class FxRates:
    """Rates per currency in units of the base currency; `rate(currency, day)` is the rate of the
    latest rate_date <= day (the base itself is 1); `convert` goes through the base currency."""

    def __init__(
        self, rows: list[dict[str, Any]], reporting_currency: str, base_currency: str = "RUB", as_of: date | None = None
    ) -> None:
        self.reporting_currency = reporting_currency
        self.base_currency = base_currency
        winner: dict[tuple[str, date], dict[str, Any]] = {}
        for row in rows:
            if row["currency"] == base_currency or (as_of is not None and row["rate_date"] > as_of):
                continue
            key = (row["currency"], row["rate_date"])
            if key not in winner or row["_order"] > winner[key]["_order"]:
                winner[key] = row
        by_currency: dict[str, list[tuple[date, float]]] = defaultdict(list)
        for (currency, rate_date), row in winner.items():
            by_currency[currency].append((rate_date, row["rate"]))
        self._dates = {c: [d for d, _ in sorted(v)] for c, v in by_currency.items()}
        self._rates = {c: [r for _, r in sorted(v)] for c, v in by_currency.items()}

    def rate(self, currency: str, day: date) -> float:
        if currency == self.base_currency:
            return 1.0
        dates = self._dates.get(currency, [])
        i = bisect_right(dates, day)
        if i == 0:
            raise MissingFxRateError(f"no {currency} rate on or before {day}")
        return self._rates[currency][i - 1]

    def convert(self, amount: float, currency: str, day: date) -> float:
        if currency == self.reporting_currency:
            return amount
        return amount * self.rate(currency, day) / self.rate(self.reporting_currency, day)


@dataclass
class Account:
    key: str  # the CRM account_id, or the billing customer_id of a billing-only account
    source: str  # "crm" or "billing"
    name: str
    crm_account_id: str | None
    billing_customer_ids: list[str] = field(default_factory=list)

    @property
    def ident(self) -> tuple[str, str]:
        return (self.source, self.key)


def _digits(text: str | None) -> str:
    return re.sub(r"[^0-9]", "", text or "")


def _domain(text: str | None) -> str:
    d = (text or "").strip().lower()
    return d[len("www.") :] if d.startswith("www.") else d


@dataclass
class State:
    """Everything the marts need, as of one cutoff."""

    as_of: date
    cutoff: datetime
    zone: tzinfo  # the reporting time zone: every date and month is a calendar date on its wall clock
    fx: FxRates
    accounts: dict[tuple[str, str], Account]
    customer_account: dict[str, tuple[str, str]]  # billing customer_id -> account ident
    match_method: dict[str, str]  # billing customer_id -> match method
    customers: dict[str, dict[str, Any]]
    stages: dict[str, dict[str, Any]]
    deals: dict[str, dict[str, Any]]  # with "_status" (won/lost/open as of the cutoff)
    history: dict[str, set[tuple[str, datetime]]]  # deal_id -> {(stage_id, entered_at)}
    first_activity: dict[str, datetime]  # deal_id -> earliest occurred_at
    paid_invoices: list[dict[str, Any]]  # with "_account" (ident or None)
    subscriptions: list[dict[str, Any]]  # counted ones, with "_account", "_start_day" and "_cancel_day"

    def day(self, ts: datetime) -> date:
        """The date of an instant in the reporting time zone."""
        return zone_date(ts, self.zone)

    def deal_account(self, deal: dict[str, Any]) -> tuple[str, str] | None:
        ident = ("crm", deal["account_id"])
        return ident if ident in self.accounts else None

    def stage(self, stage_id: str) -> dict[str, Any]:
        if stage_id not in self.stages:
            raise UnknownStageError(f"stage {stage_id!r} has no mapping as of {self.as_of}")
        return self.stages[stage_id]

    def active_accounts(self, day: date) -> set[tuple[str, str]]:
        return {s["_account"] for s in self.subscriptions if _active(s, day)}


def _active(sub: dict[str, Any], day: date) -> bool:
    canceled = sub["_cancel_day"]
    return sub["_start_day"] <= day and (canceled is None or canceled > day)


def _pipelines(sales_pipelines: Iterable[str] | str | None) -> frozenset[str]:
    """The selected pipeline ids (empty = all); a string is a comma-separated list."""
    if sales_pipelines is None:
        return frozenset()
    if isinstance(sales_pipelines, str):
        sales_pipelines = sales_pipelines.split(",")
    return frozenset(p.strip() for p in sales_pipelines if p and p.strip())


def build_state(
    drop: Drop,
    as_of: date,
    reporting_currency: str = "RUB",
    *,
    fx_base_currency: str = "RUB",
    reporting_timezone: str = "UTC",
    sales_pipelines: Iterable[str] | str | None = (),
) -> State:
    zone = ZoneInfo(reporting_timezone)
    cutoff = cutoff_of(as_of, zone)

    # accounts: CRM accounts, then billing customers matched by the first rule that holds
    crm_accounts = {k[0]: row for k, row in latest_versions(drop, "accounts", cutoff).items()}
    accounts: dict[tuple[str, str], Account] = {
        ("crm", account_id): Account(account_id, "crm", row["name"], account_id)
        for account_id, row in sorted(crm_accounts.items())
    }
    by_tax: dict[str, set[str]] = defaultdict(set)
    by_domain: dict[str, set[str]] = defaultdict(set)
    for account_id, row in crm_accounts.items():
        if _digits(row["tax_id"]):
            by_tax[_digits(row["tax_id"])].add(account_id)
        if _domain(row["domain"]):
            by_domain[_domain(row["domain"])].add(account_id)
    customers = {k[0]: row for k, row in latest_versions(drop, "customers", cutoff).items()}
    customer_account: dict[str, tuple[str, str]] = {}
    match_method: dict[str, str] = {}
    for customer_id, row in sorted(customers.items()):
        tax, domain = _digits(row["tax_id"]), _domain(row["email_domain"])
        if row["crm_account_id"] in crm_accounts:
            crm_id, method = row["crm_account_id"], "crm_account_id"
        elif tax and len(by_tax.get(tax, ())) == 1:
            (crm_id,), method = by_tax[tax], "tax_id"
        elif domain and len(by_domain.get(domain, ())) == 1:
            (crm_id,), method = by_domain[domain], "domain"
        else:
            crm_id, method = None, "unmatched"
        if crm_id is None:
            account = Account(customer_id, "billing", row["name"], None)
            accounts[account.ident] = account
        else:
            account = accounts[("crm", crm_id)]
        account.billing_customer_ids.append(customer_id)
        customer_account[customer_id] = account.ident
        match_method[customer_id] = method

    stages = {k[0]: row for k, row in latest_versions(drop, "stages", cutoff).items()}

    selected = _pipelines(sales_pipelines)
    deals: dict[str, dict[str, Any]] = {}
    for (deal_id,), row in latest_versions(drop, "deals", cutoff).items():
        if selected:
            pipeline = row["pipeline_id"]
            if pipeline is None:
                if row["stage_id"] not in stages:
                    raise UnknownStageError(f"stage {row['stage_id']!r} has no mapping as of {as_of}")
                pipeline = stages[row["stage_id"]]["pipeline_id"]
            if pipeline not in selected:
                continue
        closed = row["status"] in ("won", "lost") and row["closed_at"] < cutoff
        deals[deal_id] = {**row, "_status": row["status"] if closed else "open"}

    history: dict[str, set[tuple[str, datetime]]] = defaultdict(set)
    for row in drop.entity_rows("deal_stage_history"):
        if row["entered_at"] < cutoff and row["deal_id"] in deals:
            history[row["deal_id"]].add((row["stage_id"], row["entered_at"]))

    first_activity: dict[str, datetime] = {}
    for row in latest_versions(drop, "activities", cutoff).values():
        deal_id = row["deal_id"]
        if deal_id is None or row["occurred_at"] >= cutoff:
            continue
        if deal_id not in first_activity or row["occurred_at"] < first_activity[deal_id]:
            first_activity[deal_id] = row["occurred_at"]

    paid_invoices = []
    for row in latest_versions(drop, "invoices", cutoff).values():
        if row["status"] == "paid" and row["paid_at"] < cutoff:
            paid_invoices.append({**row, "_account": customer_account.get(row["customer_id"])})

    subscriptions = []
    for row in latest_versions(drop, "subscriptions", cutoff).values():
        account = customer_account.get(row["customer_id"])
        if row["status"] == "trialing" or row["started_at"] >= cutoff or account is None:
            continue
        canceled = row["canceled_at"] if row["canceled_at"] is not None and row["canceled_at"] < cutoff else None
        subscriptions.append(
            {
                **row,
                "_account": account,
                "_start_day": zone_date(row["started_at"], zone),
                "_cancel_day": zone_date(canceled, zone) if canceled is not None else None,
            }
        )

    return State(
        as_of=as_of,
        cutoff=cutoff,
        zone=zone,
        fx=FxRates(drop.entity_rows("fx_rates"), reporting_currency, fx_base_currency, as_of),
        accounts=accounts,
        customer_account=customer_account,
        match_method=match_method,
        customers=customers,
        stages=stages,
        deals=deals,
        history=dict(history),
        first_activity=first_activity,
        paid_invoices=paid_invoices,
        subscriptions=subscriptions,
    )


# --------------------------------------------------------------------------------------------------
# The marts
# --------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _frame(mart: str, rows: list[dict[str, Any]], extra: dict[str, str] | None = None) -> pd.DataFrame:
    columns = dict(MART_COLUMNS[mart])
    columns.update(extra or {})
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    dtypes = {"count": "Int64", "money": "float64", "number": "float64"}
    for column, kind in columns.items():
        if kind in dtypes:
            frame[column] = frame[column].astype(dtypes[kind])
        elif kind == "date":
            frame[column] = frame[column].astype(object)
    return frame.reset_index(drop=True)


def reached_stages(state: State, deal: dict[str, Any], paid_by_account: dict[Any, list[date]]) -> set[int]:
    """The stage orders a deal reached (docs/metrics.md, canonical deal stages)."""
    orders = [
        STAGE_ORDER[state.stage(stage_id)["canonical_stage"]]
        for stage_id, _ in state.history.get(deal["deal_id"], ())
        if state.stage(stage_id)["canonical_stage"] in STAGE_ORDER
    ]
    furthest = max(orders, default=0)
    won = deal["_status"] == "won"
    post_sale_paid = False
    if won:
        close_day = state.day(deal["closed_at"])
        account = state.deal_account(deal)
        post_sale_paid = any(day >= close_day for day in paid_by_account.get(account, []))
    reached = set()
    for k in range(1, POST_SALE + 1):
        if k == 1 or k <= furthest or (k <= CLOSING and won) or (k == POST_SALE and post_sale_paid):
            reached.add(k)
    return reached


def sales_funnel(state: State) -> pd.DataFrame:
    deals = list(state.deals.values())
    if not deals:
        return _frame("sales_funnel", [])
    paid_by_account: dict[Any, list[date]] = defaultdict(list)
    for invoice in state.paid_invoices:
        if invoice["_account"] is not None:
            paid_by_account[invoice["_account"]].append(state.day(invoice["paid_at"]))
    counts: dict[tuple[date, int], int] = defaultdict(int)
    for deal in deals:
        cohort = month_of(state.day(deal["created_at"]))
        for k in reached_stages(state, deal, paid_by_account):
            counts[(cohort, k)] += 1
    first = min(state.day(d["created_at"]) for d in deals)
    rows = []
    for month in months_between(first, state.as_of):
        for key, k in STAGE_ORDER.items():
            reached = counts[(month, k)]
            reached_next = counts[(month, k + 1)] if k < POST_SALE else None
            rows.append(
                {
                    "cohort_month": month,
                    "stage_key": key,
                    "stage_order": k,
                    "deals_reached": reached,
                    "deals_reached_next": reached_next,
                    "conversion_to_next": _ratio(reached_next, reached) if reached_next is not None else None,
                }
            )
    return _frame("sales_funnel", rows)


def sales_performance_monthly(state: State) -> pd.DataFrame:
    closed = [d for d in state.deals.values() if d["_status"] in ("won", "lost")]
    if not closed:
        return _frame("sales_performance_monthly", [])
    by_month: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for deal in closed:
        by_month[month_of(state.day(deal["closed_at"]))].append(deal)
    rows = []
    for month in months_between(min(by_month), state.as_of):
        won = [d for d in by_month.get(month, []) if d["_status"] == "won"]
        lost = [d for d in by_month.get(month, []) if d["_status"] == "lost"]
        won_amount = sum(state.fx.convert(d["amount"], d["currency"], state.day(d["closed_at"])) for d in won)
        cycles = []
        for d in won:
            touches = [d["created_at"]]
            if d["deal_id"] in state.first_activity:
                touches.append(state.first_activity[d["deal_id"]])
            cycles.append((state.day(d["closed_at"]) - state.day(min(touches))).days)
        rows.append(
            {
                "month": month,
                "deals_won": len(won),
                "deals_lost": len(lost),
                "win_rate": _ratio(len(won), len(won) + len(lost)),
                "won_amount": float(won_amount),
                "avg_deal_size": _ratio(won_amount, len(won)),
                "avg_cycle_days": statistics.mean(cycles) if cycles else None,
                "median_cycle_days": statistics.median(cycles) if cycles else None,
            }
        )
    return _frame("sales_performance_monthly", rows)


def revenue_monthly(state: State) -> pd.DataFrame:
    invoices = state.paid_invoices
    if not invoices:
        return _frame("revenue_monthly", [])
    first_paid_month: dict[tuple[str, str], date] = {}
    for inv in invoices:
        account, month = inv["_account"], month_of(state.day(inv["paid_at"]))
        if account is not None and (account not in first_paid_month or month < first_paid_month[account]):
            first_paid_month[account] = month
    by_month: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for inv in invoices:
        by_month[month_of(state.day(inv["paid_at"]))].append(inv)
    rows = []
    for month in months_between(min(by_month), state.as_of):
        revenue = revenue_new = 0.0
        paying = set()
        for inv in by_month.get(month, []):
            amount = state.fx.convert(inv["amount_paid"], inv["currency"], state.day(inv["paid_at"]))
            revenue += amount
            if inv["_account"] is not None:
                paying.add(inv["_account"])
                if first_paid_month[inv["_account"]] == month:
                    revenue_new += amount
        rows.append(
            {
                "month": month,
                "revenue": revenue,
                "revenue_new_customers": revenue_new,
                "new_customer_revenue_share": _ratio(revenue_new, revenue),
                "paying_customers": len(paying),
            }
        )
    return _frame("revenue_monthly", rows)


def retention_monthly(state: State) -> pd.DataFrame:
    if not state.subscriptions:
        return _frame("retention_monthly", [])
    first = min(s["_start_day"] for s in state.subscriptions)
    rows = []
    for month in months_between(first, state.as_of):
        start = state.active_accounts(month - timedelta(days=1))
        end = state.active_accounts(month_end(month))
        rows.append(
            {
                "month": month,
                "customers_start": len(start),
                "customers_end": len(end),
                "customers_new": len(end - start),
                "customers_churned": len(start - end),
                "retention_rate": _ratio(len(start & end), len(start)),
                "churn_rate": _ratio(len(start - end), len(start)),
            }
        )
    return _frame("retention_monthly", rows)


def repeat_purchase_monthly(state: State) -> pd.DataFrame:
    purchases: dict[tuple[str, str], list[date]] = defaultdict(list)
    for deal in state.deals.values():
        account = state.deal_account(deal)
        if deal["_status"] == "won" and account is not None:
            purchases[account].append(state.day(deal["closed_at"]))
    if not purchases:
        return _frame("repeat_purchase_monthly", [])
    first = min(min(days) for days in purchases.values())
    rows = []
    for month in months_between(first, state.as_of):
        last_day = month_end(month)
        counts = [sum(1 for day in days if day <= last_day) for days in purchases.values()]
        with_purchase = sum(1 for c in counts if c >= 1)
        with_repeat = sum(1 for c in counts if c >= 2)
        rows.append(
            {
                "month": month,
                "customers_with_purchase": with_purchase,
                "customers_with_repeat_purchase": with_repeat,
                "repeat_purchase_rate": _ratio(with_repeat, with_purchase),
            }
        )
    return _frame("repeat_purchase_monthly", rows)


CUSTOMER_VALUE_EXTRA = {"account_source": "text", "crm_account_id": "text", "billing_customer_ids": "text"}


def customer_value(state: State) -> pd.DataFrame:
    won_accounts: set[tuple[str, str]] = set()
    open_deals: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for deal in state.deals.values():
        account = state.deal_account(deal)
        if account is None:
            continue
        if deal["_status"] == "won":
            won_accounts.add(account)
        elif deal["_status"] == "open":
            open_deals[account].append(deal)
    active_subs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for sub in state.subscriptions:
        if _active(sub, state.as_of):
            active_subs[sub["_account"]].append(sub)
    rows = []
    for ident in sorted(won_accounts | set(active_subs), key=lambda i: (i[1], i[0])):
        account = state.accounts[ident]
        pipeline = sum(
            state.fx.convert(
                deal["amount"] * state.stage(deal["stage_id"])["probability"], deal["currency"], state.as_of
            )
            for deal in open_deals.get(ident, [])
        )
        mrr = sum(
            state.fx.convert(sub["mrr_amount"], sub["currency"], state.as_of) for sub in active_subs.get(ident, [])
        )
        rows.append(
            {
                "account_key": account.key,
                "account_name": account.name,
                "weighted_open_pipeline": float(pipeline),
                "active_mrr": float(mrr),
                "potential_contract_value": float(pipeline + 12 * mrr),
                "as_of_date": state.as_of,
                "account_source": account.source,
                "crm_account_id": account.crm_account_id,
                "billing_customer_ids": ",".join(sorted(account.billing_customer_ids)),
            }
        )
    return _frame("customer_value", rows, CUSTOMER_VALUE_EXTRA)


MART_FUNCTIONS = {
    "sales_funnel": sales_funnel,
    "sales_performance_monthly": sales_performance_monthly,
    "revenue_monthly": revenue_monthly,
    "retention_monthly": retention_monthly,
    "repeat_purchase_monthly": repeat_purchase_monthly,
    "customer_value": customer_value,
}


SETTINGS = ("reporting_currency", "fx_base_currency", "reporting_timezone", "sales_pipelines")


def compute_marts(
    drop_dir: Path | str | Drop,
    as_of: date,
    reporting_currency: str = "RUB",
    *,
    fx_base_currency: str = "RUB",
    reporting_timezone: str = "UTC",
    sales_pipelines: Iterable[str] | str | None = (),
) -> dict[str, pd.DataFrame]:
    """The six marts of docs/metrics.md for the run of `as_of`, computed from the file drop at `drop_dir`,
    with the deployment's reporting settings (the dbt vars of the same names)."""
    drop = drop_dir if isinstance(drop_dir, Drop) else read_drop(drop_dir)
    state = build_state(
        drop,
        as_of,
        reporting_currency,
        fx_base_currency=fx_base_currency,
        reporting_timezone=reporting_timezone,
        sales_pipelines=sales_pipelines,
    )
    return {name: fn(state) for name, fn in MART_FUNCTIONS.items()}


def compute_accounts(drop_dir: Path | str | Drop, as_of: date, *, reporting_timezone: str = "UTC") -> pd.DataFrame:
    """One row per billing customer as of the run: customer_id, account_key, account_source, match_method."""
    drop = drop_dir if isinstance(drop_dir, Drop) else read_drop(drop_dir)
    state = build_state(drop, as_of, reporting_timezone=reporting_timezone)
    rows = [
        {
            "customer_id": customer_id,
            "account_key": state.accounts[ident].key,
            "account_source": ident[0],
            "match_method": state.match_method[customer_id],
        }
        for customer_id, ident in sorted(state.customer_account.items())
    ]
    return pd.DataFrame.from_records(rows, columns=["customer_id", "account_key", "account_source", "match_method"])


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.marts.reference DROP_DIR YYYY-MM-DD [CURRENCY] [SETTING=VALUE ...]`: print the marts.

    SETTING is fx_base_currency, reporting_timezone or sales_pipelines (comma-separated)."""
    args = sys.argv[1:] if argv is None else argv
    positional = [a for a in args if "=" not in a]
    settings = dict(a.split("=", 1) for a in args if "=" in a)
    if len(positional) not in (2, 3) or not set(settings) <= set(SETTINGS):
        raise SystemExit(main.__doc__)
    marts = compute_marts(Path(positional[0]), date.fromisoformat(positional[1]), *positional[2:], **settings)
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_columns", 20):
        for name, frame in marts.items():
            print(f"== {name} ({len(frame)} rows)")
            print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
