"""A local fake of the Stripe API (v1), seeded from a file drop's billing, for the connector's tests and demos.

`FakeStripe(drop_dir, api_key=...)` is a real HTTP server on 127.0.0.1 that serves the drop's
billing (customers, subscriptions, invoices; only well-formed rows, `drop_records.well_formed`) as
of its clock: every version with `updated_at <= now`, the latest one winning (for equal times the
later file in load order, then the later line, as the loader). Each version is also an event at
its `updated_at`, and the Events API shows only the last 30 days of them, so a test moves the
clock between nights and nothing else. Admin calls (`/_admin/...` or the methods) move the clock,
change or delete records and inject faults (a 429 after the n-th request of a path, a 5xx, a
dropped connection); `on_request(path, n, callback)` runs a change right after the n-th answer of a
path is computed (a change while a client pages).

Endpoint -> documentation (the research notes `docs/research/stripe-api.md` quote each):

- `GET /v1/customers` (`expand[]=data.tax_ids`, `created`, `email`): stripe/stripe-node
  types/CustomersResource.d.ts (CustomerListParams; "sorted by creation date, with the most recent
  customers appearing first"); the Customer shape: types/Customers.d.ts; `tax_ids` not included
  unless expanded: docs.stripe.com/changelog/2020-08-27/deprecates-auto-expansion-tax-id-customer.
- `GET /v1/customers/{id}` (`expand[]=tax_ids`; a deleted customer answers
  `{"id", "object": "customer", "deleted": true}`): types/Customers.d.ts (DeletedCustomer).
- `GET /v1/customers/{id}/tax_ids`: types/CustomersResource.d.ts (listTaxIds).
- `GET /v1/subscriptions` (`status` in active, all, canceled, ended, incomplete,
  incomplete_expired, past_due, paused, trialing, unpaid; none = every status but canceled;
  `customer`, `created`): stripe/stripe-python stripe/params/_subscription_list_params.py; the
  Subscription, item and Price shapes: stripe-node types/Subscriptions.d.ts, types/Prices.d.ts,
  with the Basil change of `current_period_*` onto the items
  (docs.stripe.com/changelog/basil/2025-03-31/deprecate-subscription-current-period-start-and-end).
- `GET /v1/invoices` (`status`, `customer`, `subscription`, `created`):
  stripe/stripe-python stripe/params/_invoice_list_params.py; `status_transitions`: rdoc.info
  stripe-ruby Stripe/Invoice/StatusTransitions; `parent.subscription_details.subscription` instead
  of `subscription` from Basil on:
  docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects.
- `GET /v1/events` (`type` with `*`, `types[]`, `created`; "List events, going back up to 30
  days"): stripe-python stripe/_event_service.py, stripe/_event.py (the Event shape).
- paging: `limit` 1..100 (default 10), `starting_after` / `ending_before` (not both), newest
  first, `{"object": "list", "url", "has_more", "data"}`: docs.stripe.com/api/pagination.
- range filters `created[gt|gte|lt|lte]`, `expand[]`: stripe-python params files,
  docs.stripe.com/api/expanding_objects.
- versions: `Stripe-Version` request header, echoed in the answer: docs.stripe.com/api/versioning.
  This fake renders one version, `API_VERSION`, and answers 400 to a request for another or
  without the header (a real account would render its default version): so a client that does not
  pin the version fails its tests.
- auth: Bearer (or Basic with the key as user name); 401 bodies "You did not provide an API
  key..." and "Invalid API Key provided: sk_test_****abcd" with `Www-Authenticate: Basic
  realm="Stripe"` (github.com/gadelkareem/skeleton#20, github.com/stripe/stripe-node#361); 403 for
  a key without the permission: docs.stripe.com/api/errors.
- rate limit: 25 requests a second in test mode (docs.stripe.com/rate-limits); over it, 429 with
  `{"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Request rate
  limit exceeded..."}}`, `Stripe-Should-Retry: true`, `Stripe-Rate-Limited-Reason: global-rate`,
  and no `Retry-After` (none is documented; an injected 429 may carry one, `retry_after=`).
- errors: `{"error": {"type", "code", "message", "param"}}`, 404 `resource_missing` "No such
  customer: 'cus_...'" (docs.stripe.com/api/errors, stripe/stripe-cli#923).
- `Request-Id: req_...` and a `Date` header from the fake's clock (the service's clock, which the
  connector reads to judge its cursor).
- amounts are integers in the currency's minor unit, currencies lower case; zero-decimal
  currencies (BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF) carry the major
  unit, three-decimal ones (BHD JOD KWD OMR TND) three decimals, ISK, HUF and TWD two
  (stripe.com/docs/currencies; `minor_exponent`).

How the drop is carried (drop field -> Stripe field; MAPPING.md has the staging side):

- ids: a drop id already of Stripe's form (`cus_...`, `sub_...`, `in_...` of letters and digits,
  as the generator writes them) is the Stripe id; any other gets the prefix and a hash of the drop
  id (`FakeStripe.stripe_id(entity, drop_id)`, `.drop_id(entity, stripe_id)`).
- customers: name -> `name`; crm_account_id -> `metadata.crm_account_id`; tax_id -> one entry of
  `tax_ids` (type `ru_inn`, served only when expanded); email_domain -> the domain of `email`
  (`billing@<email_domain>`, as written); currency -> `currency` (lower case); created_at -> `created`.
- subscriptions: customer_id -> `customer`; plan -> the price's `nickname`; status -> `status` (the
  drop's four are Stripe's); currency -> `currency`; mrr_amount -> one item, price `unit_amount` ×
  `quantity` per `recurring.interval`: a third of the subscriptions bill yearly (12 × MRR), a
  third quarterly (month, interval_count 3), the others monthly, each with a quantity that divides
  the amount exactly, so the monthly value is exact; started_at -> `start_date` and `created`;
  canceled_at -> `canceled_at` and `ended_at` when canceled, else `cancel_at` (a scheduled end).
- invoices: customer_id -> `customer`; subscription_id -> `parent.subscription_details.subscription`;
  deal_id -> `metadata.deal_id`; status -> `status`; amount_total -> `total` (and `amount_due`),
  amount_paid -> `amount_paid`; issued_at -> `status_transitions.finalized_at` (once out of draft)
  and, for the first version, `created`; due_at -> `due_date`; paid_at -> `status_transitions.paid_at`;
  a void or uncollectible version's time -> `voided_at` / `marked_uncollectible_at`.
- events: each version is one event at its `updated_at`: `customer.created|updated|deleted`,
  `customer.subscription.created|updated|deleted` (deleted = canceled), `invoice.created`,
  `invoice.finalized` (out of draft), `invoice.paid`, `invoice.voided`,
  `invoice.marked_uncollectible`, `invoice.updated`; `data.object` is the object then, without
  expansions (a customer's `tax_ids` is not in its events), `previous_attributes` on `*.updated`.

What Stripe cannot carry: a customer's `updated_at` (Stripe objects have no change time: the
connector dates versions by events), a trial's end while it runs (unknown to the drop), a
fraction of a zero-decimal currency's minor unit (rounded), deletion of subscriptions and
invoices (the drop has none).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from b2b_pipeline.filedrop.discover import discover
from b2b_pipeline.sources.amocrm.fake import _read_rows as read_rows  # the drop's CSV / JSON Lines reader
from b2b_pipeline.sources.drop_records import well_formed
from b2b_pipeline.sources.fake_server import LocalServer

API_VERSION = "2025-03-31.basil"
ENTITIES = ("customers", "subscriptions", "invoices")
KEYS = {"customers": "customer_id", "subscriptions": "subscription_id", "invoices": "invoice_id"}
PREFIXES = {"customers": "cus", "subscriptions": "sub", "invoices": "in"}
EVENT_PREFIX = {"customers": "customer", "subscriptions": "customer.subscription", "invoices": "invoice"}
MAX_LIMIT, DEFAULT_LIMIT = 100, 10
EVENT_RETENTION = timedelta(days=30)
# stripe.com/docs/currencies
ZERO_DECIMAL = frozenset(
    ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF")
)
THREE_DECIMAL = frozenset(("BHD", "JOD", "KWD", "OMR", "TND"))
# ISK is zero-decimal, HUF and TWD are paid out whole, but the API takes all three with two decimals
TWO_DECIMAL_IN_API = frozenset(("ISK", "HUF", "TWD"))
SUBSCRIPTION_STATUSES = (
    "active",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
_STRIPE_ID = re.compile(r"^(cus|sub|in)_[A-Za-z0-9]+$")


def minor_exponent(currency: str) -> int:
    """Decimals of the currency's amounts in the API (stripe.com/docs/currencies)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def minor_units(amount: str | None, currency: str) -> int:
    """An amount of the drop (`1234.50`, `1234,50`) as an integer of the currency's minor unit; a
    fraction of the minor unit (a zero-decimal currency with cents) is rounded half to even."""
    value = Decimal(str(amount or "0").strip().replace(",", ".")) * (10 ** minor_exponent(currency))
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def epoch(text: str | None) -> int | None:
    """Unix seconds of an ISO 8601 timestamp of the drop (no offset means UTC)."""
    if not text or not str(text).strip():
        return None
    dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _digest(*parts: Any, n: int = 14) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:n]


def stripe_id(entity: str, drop_id: str) -> str:
    """The Stripe id serving a drop id: the drop id itself when it already has Stripe's form."""
    text = str(drop_id)
    if _STRIPE_ID.match(text) and text.startswith(PREFIXES[entity] + "_"):
        return text
    return f"{PREFIXES[entity]}_{_digest(entity, text)}"


def billing_interval(subscription_id: str) -> tuple[str, int]:
    """The price interval a subscription bills in: yearly, quarterly or monthly, stable per id."""
    return (("year", 1), ("month", 3), ("month", 1))[int(_digest("interval", subscription_id), 16) % 3]


def _quantity(subscription_id: str, per_period: int) -> int:
    """Seats: a divisor of the amount billed per period, so that unit_amount × quantity is exact."""
    start = int(_digest("seats", subscription_id), 16) % 4
    for q in (10, 5, 3, 2)[start:]:
        if per_period and per_period % q == 0:
            return q
    return 1


@dataclass
class Fault:
    """A fault on the next `count` requests to `path`, after letting `after` through."""

    path: str
    kind: str  # "429", "500".."504", "drop" (the connection closes without an answer)
    count: int = 1
    after: int = 0
    retry_after: int | None = None


class StripeError(Exception):
    """An error answer of the fake API."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": "invalid_request_error", "message": str(self)}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def read_billing(drop_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every well-formed billing row of the drop per entity, in the loader's order (files in load order)."""
    out: dict[str, list[dict[str, Any]]] = {e: [] for e in ENTITIES}
    for f in discover(Path(drop_dir)).files:
        if f.system != "billing" or f.entity is None or f.fmt is None or f.entity.name not in out:
            continue
        out[f.entity.name].extend(row for row in read_rows(f.path) if well_formed(f.entity, row))
    return out


class Store:
    """The drop's billing versions and the fake's clock; renders Stripe objects and events as of `now`."""

    def __init__(self, drop_dir: Path, now: int | None, livemode: bool) -> None:
        self.lock = threading.RLock()
        self.livemode = livemode
        self.versions: dict[str, dict[str, list[dict[str, Any]]]] = {e: {} for e in ENTITIES}
        self.ids: dict[tuple[str, str], str] = {}  # (entity, stripe id) -> drop id
        self.revision = 0
        self._seq = 0
        latest = 0
        for entity, rows in read_billing(drop_dir).items():
            for row in rows:
                self._add(entity, row)
                latest = max(latest, row["_t"])
        self.now = now if now is not None else latest
        self._cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    def _add(self, entity: str, row: dict[str, Any]) -> None:
        row["_t"] = epoch(row.get("updated_at")) or 0
        self._seq += 1
        row["_seq"] = self._seq
        key = str(row[KEYS[entity]])
        self.ids[(entity, stripe_id(entity, key))] = key
        versions = self.versions[entity].setdefault(key, [])
        versions.append(row)
        versions.sort(key=lambda r: (r["_t"], r["_seq"]))  # a later file, then a later line, wins a tie

    # -- rendering -------------------------------------------------------------------------------

    def customer(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A Customer, with its `tax_ids` list (served only when expanded)."""
        cid = stripe_id("customers", row["customer_id"])
        created = epoch(row.get("created_at"))
        metadata = {"crm_account_id": str(row["crm_account_id"])} if row.get("crm_account_id") else {}
        tax_ids = []
        if row.get("tax_id"):
            tax_ids.append(
                {
                    "id": f"txi_{_digest('tax', cid, row['tax_id'])}",
                    "object": "tax_id",
                    "country": "RU",
                    "created": created,
                    "customer": cid,
                    "livemode": self.livemode,
                    "owner": {"customer": cid, "type": "customer"},
                    "type": "ru_inn",
                    "value": str(row["tax_id"]),
                    "verification": None,
                }
            )
        return {
            "id": cid,
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": created,
            "currency": str(row["currency"]).strip().lower() if row.get("currency") else None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": f"billing@{row['email_domain']}" if row.get("email_domain") else None,
            "invoice_prefix": _digest("prefix", cid, n=8).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": self.livemode,
            "metadata": metadata,
            "name": row.get("name"),
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
            "tax_ids": {
                "object": "list",
                "data": tax_ids,
                "has_more": False,
                "total_count": len(tax_ids),
                "url": f"/v1/customers/{cid}/tax_ids",
            },
        }

    def subscription(self, row: Mapping[str, Any]) -> dict[str, Any]:
        sid = stripe_id("subscriptions", row["subscription_id"])
        currency = str(row["currency"]).strip()
        interval, count = billing_interval(sid)
        months = 12 if interval == "year" else count
        per_period = minor_units(row.get("mrr_amount"), currency) * months
        quantity = _quantity(sid, per_period)
        unit = per_period // quantity
        started = epoch(row.get("started_at"))
        canceled = epoch(row.get("canceled_at"))
        status = str(row["status"]).strip()
        plan = row.get("plan") or None
        period = {"year": 365, "month": 30 * count}[interval] * 86_400
        elapsed = max(0, int(row.get("_t") or 0) - (started or 0))  # the period of the version's time
        period_start = (started or 0) + (elapsed // period) * period
        price = {
            "id": f"price_{_digest('price', plan, currency.lower(), unit, interval, count)}",
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": started,
            "currency": currency.lower(),
            "livemode": self.livemode,
            "lookup_key": None,
            "metadata": {},
            "nickname": plan,
            "product": f"prod_{_digest('product', plan)}",
            "recurring": {
                "interval": interval,
                "interval_count": count,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            },
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": unit,
            "unit_amount_decimal": str(unit),
        }
        item = {
            "id": f"si_{_digest('item', sid)}",
            "object": "subscription_item",
            "created": started,
            "current_period_end": period_start + period,
            "current_period_start": period_start,
            "discounts": [],
            "metadata": {},
            "price": price,
            "quantity": quantity,
            "subscription": sid,
            "tax_rates": [],
        }
        ended = status in ("canceled", "incomplete_expired")
        return {
            "id": sid,
            "object": "subscription",
            "application": None,
            "billing_cycle_anchor": started,
            "cancel_at": canceled if canceled is not None and not ended else None,
            "cancel_at_period_end": False,
            "canceled_at": canceled,
            "cancellation_details": {
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested" if canceled is not None else None,
            },
            "collection_method": "send_invoice",
            "created": started,
            "currency": currency.lower(),
            "customer": stripe_id("customers", row["customer_id"]),
            "days_until_due": 14,
            "default_payment_method": None,
            "description": None,
            "discounts": [],
            "ended_at": canceled if ended else None,
            "items": {
                "object": "list",
                "data": [item],
                "has_more": False,
                "total_count": 1,
                "url": f"/v1/subscription_items?subscription={sid}",
            },
            "latest_invoice": None,
            "livemode": self.livemode,
            "metadata": {},
            "pause_collection": None,
            "start_date": started,
            "status": status,
            "test_clock": None,
            "trial_end": None,
            "trial_start": started if status == "trialing" else None,
        }

    def invoice(self, row: Mapping[str, Any], history: list[Mapping[str, Any]]) -> dict[str, Any]:
        """An Invoice; `history`: the record's versions up to this one (its first gives `created`)."""
        iid = stripe_id("invoices", row["invoice_id"])
        currency = str(row["currency"]).strip()
        total = minor_units(row.get("amount_total"), currency)
        paid = minor_units(row.get("amount_paid"), currency)
        status = str(row["status"]).strip()
        created = epoch(history[0].get("issued_at"))

        def first(wanted: str) -> int | None:
            return next((v["_t"] for v in history if str(v["status"]).strip() == wanted), None)

        finalized = epoch(row.get("issued_at")) if status != "draft" else None
        subscription = row.get("subscription_id")
        parent = (
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": {},
                    "subscription": stripe_id("subscriptions", subscription),
                },
            }
            if subscription
            else None
        )
        return {
            "id": iid,
            "object": "invoice",
            "account_country": "RU",
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": paid,
            "amount_remaining": 0 if status in ("paid", "void") else max(total - paid, 0),
            "attempt_count": 0,
            "attempted": status == "paid",
            "auto_advance": status in ("draft", "open"),
            "billing_reason": "subscription_cycle" if subscription else "manual",
            "collection_method": "send_invoice",
            "created": created,
            "currency": currency.lower(),
            "customer": stripe_id("customers", row["customer_id"]),
            "description": None,
            "due_date": epoch(row.get("due_at")),
            "effective_at": finalized,
            "ending_balance": None if status == "draft" else 0,
            "hosted_invoice_url": None,
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": f"il_{_digest('line', iid)}",
                        "object": "line_item",
                        "amount": total,
                        "currency": currency.lower(),
                        "description": "Subscription" if subscription else "Set-up fee",
                        "quantity": 1,
                    }
                ],
                "has_more": False,
                "total_count": 1,
                "url": f"/v1/invoices/{iid}/lines",
            },
            "livemode": self.livemode,
            "metadata": {"deal_id": str(row["deal_id"])} if row.get("deal_id") else {},
            "number": None if status == "draft" else f"{_digest('prefix', iid, n=8).upper()}-0001",
            "parent": parent,
            "period_end": created,
            "period_start": created,
            "status": status,
            "status_transitions": {
                "finalized_at": finalized,
                "marked_uncollectible_at": first("uncollectible") if status == "uncollectible" else None,
                "paid_at": epoch(row.get("paid_at")),
                "voided_at": first("void") if status == "void" else None,
            },
            "subtotal": total,
            "total": total,
            "total_excluding_tax": total,
        }

    def render(self, entity: str, versions: list[dict[str, Any]], i: int) -> dict[str, Any]:
        row = versions[i]
        if entity == "customers":
            return self.customer(row)
        if entity == "subscriptions":
            return self.subscription(row)
        return self.invoice(row, versions[: i + 1])

    # -- as of now -------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The lists and events the API serves as of now (cached until the clock or a record changes)."""
        with self.lock:
            stamp = (self.now, self.revision)
            if self._cache is None or self._cache[0] != stamp:
                self._cache = (stamp, self._render())
            return self._cache[1]

    def _render(self) -> dict[str, Any]:
        lists: dict[str, list[dict[str, Any]]] = {e: [] for e in ENTITIES}
        deleted: dict[str, dict[str, Any]] = {}
        events: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        oldest = self.now - int(EVENT_RETENTION.total_seconds())
        for rank, entity in enumerate(ENTITIES):
            for key, versions in self.versions[entity].items():
                seen = [v for v in versions if v["_t"] <= self.now]
                if not seen:
                    continue
                last = len(seen) - 1
                obj = self.render(entity, versions, last)
                if seen[-1].get("_deleted"):
                    deleted[obj["id"]] = obj
                else:
                    lists[entity].append(obj)
                previous: dict[str, Any] | None = None
                for i, version in enumerate(seen):
                    if version["_t"] < oldest:
                        continue
                    now_obj = obj if i == last else self.render(entity, versions, i)
                    before = previous if previous is not None else (self.render(entity, versions, i - 1) if i else None)
                    event = self._event(entity, key, i, version, now_obj, before)
                    events.append(((version["_t"], rank, key, i), event))
                    previous = now_obj
        for entity in ENTITIES:
            lists[entity].sort(key=lambda o: (o["created"] or 0, o["id"]), reverse=True)
        events.sort(key=lambda e: e[0], reverse=True)
        return {**lists, "deleted": deleted, "events": [e for _, e in events]}

    def _event(
        self,
        entity: str,
        key: str,
        i: int,
        version: Mapping[str, Any],
        obj: dict[str, Any],
        before: dict[str, Any] | None,
    ) -> dict[str, Any]:
        public = {k: v for k, v in obj.items() if k != "tax_ids"}  # an event's object is not expanded
        kind = self._event_type(entity, version, obj, before)
        data: dict[str, Any] = {"object": public}
        if kind.endswith(".updated") and before is not None:
            data["previous_attributes"] = {k: v for k, v in before.items() if k != "tax_ids" and obj.get(k) != v}
        return {
            "id": f"evt_{_digest('event', entity, key, i, version['_t'], n=24)}",
            "object": "event",
            "api_version": API_VERSION,
            "created": version["_t"],
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    @staticmethod
    def _event_type(
        entity: str, version: Mapping[str, Any], obj: Mapping[str, Any], before: Mapping[str, Any] | None
    ) -> str:
        prefix = EVENT_PREFIX[entity]
        if version.get("_deleted"):
            return f"{prefix}.deleted"
        if before is None:
            return f"{prefix}.created"
        status, was = obj.get("status"), before.get("status")
        if entity == "subscriptions" and status == "canceled" and was != "canceled":
            return f"{prefix}.deleted"  # Stripe's event of a subscription's end
        if entity == "invoices" and status != was:
            transitions = {
                "paid": "invoice.paid",
                "void": "invoice.voided",
                "uncollectible": "invoice.marked_uncollectible",
            }
            if status in transitions:
                return transitions[status]
            if was == "draft":
                return "invoice.finalized"
        return f"{prefix}.updated"

    # -- changes ---------------------------------------------------------------------------------

    def change(self, entity: str, drop_id: str, changes: Mapping[str, Any], *, delete: bool = False) -> str:
        """A new version of a record (or a new record) at the clock's now; deleting a customer also
        cancels its live subscriptions, as Stripe does."""
        with self.lock:
            if entity not in ENTITIES:
                raise ValueError(f"unknown entity {entity!r} (known: {', '.join(ENTITIES)})")
            if delete and entity != "customers":
                raise ValueError("only customers can be deleted")
            key = str(drop_id)
            versions = self.versions[entity].get(key)
            base = {k: v for k, v in versions[-1].items() if not k.startswith("_")} if versions else {}
            row = {**base, **{k: (None if v is None else str(v)) for k, v in changes.items()}}
            row[KEYS[entity]] = key
            stamp = datetime.fromtimestamp(self.now, UTC).isoformat()
            row["updated_at"] = stamp
            if delete:
                row["_deleted"] = True
                for sub_key, subs in self.versions["subscriptions"].items():
                    live = [v for v in subs if v["_t"] <= self.now]
                    if live and live[-1]["customer_id"] == key and live[-1]["status"] != "canceled":
                        self.change("subscriptions", sub_key, {"status": "canceled", "canceled_at": stamp})
            self._add(entity, row)
            self.revision += 1
            return stripe_id(entity, key)


def _parse_range(query: Mapping[str, list[str]], name: str) -> list[tuple[str, int]]:
    """`name` as an exact integer or `name[gt|gte|lt|lte]`, as (operator, value) pairs."""
    out = []
    for op in ("gt", "gte", "lt", "lte"):
        for value in query.get(f"{name}[{op}]", []):
            out.append((op, _integer(value, f"{name}[{op}]")))
    for value in query.get(name, []):
        out.append(("eq", _integer(value, name)))
    return out


def _integer(value: str, param: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", param=param) from None


def _in_range(value: int | None, bounds: list[tuple[str, int]]) -> bool:
    if not bounds:
        return True
    if value is None:
        return False
    tests = {
        "gt": value.__gt__,
        "gte": value.__ge__,
        "lt": value.__lt__,
        "lte": value.__le__,
        "eq": value.__eq__,
    }
    return all(tests[op](bound) for op, bound in bounds)


class FakeStripe(LocalServer):
    """The fake Stripe API server. Use as a context manager, or `start()` / `stop()`.

    `api_key`: the secret key it accepts (`sk_test_...`; `sk_live_...` serves livemode objects);
    `forbidden_keys`: keys it knows but refuses with 403 (a restricted key without the permission).
    `now`: its clock (default: the drop's latest `updated_at`). `requests_per_second`: its rate
    limit (Stripe's test mode: 25).
    """

    def __init__(
        self,
        drop_dir: Path,
        *,
        api_key: str,
        now: datetime | None = None,
        requests_per_second: float = 25,
        api_version: str = API_VERSION,
        forbidden_keys: tuple[str, ...] = (),
    ) -> None:
        self.api_key = api_key
        self.api_version = api_version
        self.forbidden_keys = tuple(forbidden_keys)
        self.requests_per_second = requests_per_second
        self.store = Store(Path(drop_dir), int(now.timestamp()) if now else None, api_key.startswith("sk_live_"))
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, dict[str, list[str]], int]] = []  # (path, query, status) of API calls
        self._hooks: list[list[Any]] = []  # [path, n, callback, answered so far]
        self._window: deque[float] = deque()
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        return self.serve_methods("fake-stripe", ("GET", "POST", "DELETE"))

    # -- test helpers -----------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.store.now, UTC)

    def set_clock(self, moment: datetime) -> None:
        with self.store.lock:
            self.store.now = int(moment.timestamp())

    def stripe_id(self, entity: str, drop_id: str) -> str:
        """The Stripe id serving a drop record (entity: customers, subscriptions, invoices)."""
        return stripe_id(entity, drop_id)

    def drop_id(self, entity: str, sid: str | None) -> str | None:
        """The drop id a Stripe id serves (None for None)."""
        return None if sid is None else self.store.ids[(entity, sid)]

    def change_record(
        self, entity: str, drop_id: str, changes: Mapping[str, Any] | None = None, *, delete: bool = False
    ) -> str:
        """A new version of a drop record at the fake's now (columns of the drop's contract); its Stripe id."""
        return self.store.change(entity, drop_id, changes or {}, delete=delete)

    def inject_fault(self, path: str, kind: str, **kwargs: Any) -> None:
        """`kind` on the next `count` requests of `path` after `after` (e.g. a 429 after the n-th)."""
        with self._lock:
            self.faults.append(Fault(path, kind, **kwargs))

    def on_request(self, path: str, n: int, callback: Callable[[FakeStripe], None]) -> None:
        """Run `callback(fake)` once, when the `n`-th answered request of `path` (1 = the first; faults,
        429s and refusals not counted) has been computed and before it is sent."""
        if n < 1:
            raise ValueError("n counts from 1")
        with self._lock:
            self._hooks.append([path, n, callback, 0])

    def request_count(self, path: str | None = None) -> int:
        """API requests received (every answer, faults and refusals included), of `path` or all."""
        return sum(1 for p, _, _ in self.requests if path is None or p == path)

    # -- HTTP -------------------------------------------------------------------------------------

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self._record(h, status)
        h.send_response_only(status)
        h.send_header("Server", "nginx")
        h.send_header("Date", formatdate(self.store.now, usegmt=True))  # the service's clock
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
        h.send_header("Stripe-Version", self.api_version)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query, keep_blank_values=True)
        admin = url.path.startswith("/_admin/")
        h.call = None if admin else (url.path, query)  # type: ignore[attr-defined]
        try:
            if admin:
                self._admin(h, method, url.path)
            else:
                self._api(h, method, url.path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _record(self, h: BaseHTTPRequestHandler, status: int) -> None:
        """Record an API call with its answer, before the answer leaves (a client that has it sees it counted)."""
        call = getattr(h, "call", None)
        if call is not None:
            with self._lock:
                self.requests.append((call[0], call[1], status))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path == path and fault.count > 0:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.count -= 1
                    return fault
        return None

    def _over_rate(self) -> bool:
        with self._lock:
            t = time.monotonic()
            while self._window and t - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= self.requests_per_second:
                return True
            self._window.append(t)
            return False

    def _rate_limited(self, h: BaseHTTPRequestHandler, retry_after: int | None = None) -> None:
        headers = {"Stripe-Should-Retry": "true", "Stripe-Rate-Limited-Reason": "global-rate"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        error = StripeError(
            429,
            "Request rate limit exceeded. You can learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
        self._send(h, 429, error.body(), headers)

    def _api(self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]]) -> None:
        fault = self._take_fault(path)
        if fault is not None:
            if fault.kind == "429":
                return self._rate_limited(h, fault.retry_after)
            if fault.kind == "drop":
                self._record(h, 0)
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return None
            status = int(fault.kind)
            error = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
            return self._send(h, status, error, {"Stripe-Should-Retry": "true"})
        if self._over_rate():
            return self._rate_limited(h)
        try:
            self._authenticate(h.headers.get("Authorization", ""))
            if method != "GET":
                raise StripeError(405, f"Unrecognized request URL ({method}: {path}).")
            version = h.headers.get("Stripe-Version")
            if version != self.api_version:
                raise StripeError(
                    400,
                    f"Invalid Stripe API version: {version}. This fake renders only {self.api_version}: "
                    f"send the header Stripe-Version: {self.api_version}.",
                    code="api_version_invalid",
                )
            status, body = 200, self._route(path, query)
        except StripeError as exc:
            extra = {"Www-Authenticate": 'Basic realm="Stripe"'} if exc.status == 401 else {}
            return self._send(h, exc.status, exc.body(), extra)
        self._run_hooks(path)
        return self._send(h, status, body)

    def _authenticate(self, header: str) -> None:
        key = ""
        if header.startswith("Bearer "):
            key = header[7:].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except ValueError:
                key = ""
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
            )
        if key in self.forbidden_keys:
            raise StripeError(
                403,
                f"The provided key '{_masked(key)}' does not have the required permissions for this endpoint.",
            )
        if key != self.api_key:
            raise StripeError(401, f"Invalid API Key provided: {_masked(key)}")

    def _run_hooks(self, path: str) -> None:
        due = []
        with self._lock:
            for hook in self._hooks:
                if hook[0] == path:
                    hook[3] += 1
                    if hook[3] == hook[1]:
                        due.append(hook[2])
        for callback in due:  # outside the lock: a callback may change records or inject faults
            callback(self)

    def _route(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        view = self.store.view()
        expand = set(query.get("expand[]", []) + query.get("expand", []))
        parts = path.rstrip("/").split("/")
        if path == "/v1/customers":
            self._only_expand(expand, {"data.tax_ids"})
            items = [
                c
                for c in view["customers"]
                if _in_range(c["created"], _parse_range(query, "created"))
                and (not query.get("email") or c["email"] == query["email"][0])
            ]
            return self._page(path, query, [_expanded(c, "data.tax_ids" in expand) for c in items])
        if len(parts) == 4 and parts[:3] == ["", "v1", "customers"]:
            self._only_expand(expand, {"tax_ids"})
            return _expanded(self._customer(view, parts[3]), "tax_ids" in expand)
        if len(parts) == 5 and parts[:3] == ["", "v1", "customers"] and parts[4] == "tax_ids":
            customer = self._customer(view, parts[3])
            if customer.get("deleted"):
                raise StripeError(404, f"No such customer: '{parts[3]}'", code="resource_missing", param="id")
            return self._page(path, query, customer["tax_ids"]["data"])
        if path == "/v1/subscriptions":
            self._only_expand(expand, set())
            return self._page(path, query, self._subscriptions(view, query))
        if path == "/v1/invoices":
            self._only_expand(expand, set())
            return self._page(path, query, self._invoices(view, query))
        if path == "/v1/events":
            self._only_expand(expand, set())
            return self._page(path, query, self._events(view, query))
        raise StripeError(404, f"Unrecognized request URL (GET: {path}).")

    @staticmethod
    def _only_expand(asked: set[str], allowed: set[str]) -> None:
        for name in sorted(asked - allowed):
            raise StripeError(400, f"This property cannot be expanded ({name}).", param="expand")

    @staticmethod
    def _customer(view: Mapping[str, Any], cid: str) -> dict[str, Any]:
        for c in view["customers"]:
            if c["id"] == cid:
                return c
        if cid in view["deleted"]:
            return {"id": cid, "object": "customer", "deleted": True}
        raise StripeError(404, f"No such customer: '{cid}'", code="resource_missing", param="id")

    @staticmethod
    def _subscriptions(view: Mapping[str, Any], query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        status = (query.get("status") or [""])[0]
        if status and status not in (*SUBSCRIPTION_STATUSES, "all", "ended"):
            raise StripeError(400, f"Invalid status: must be one of {', '.join(SUBSCRIPTION_STATUSES)}, all or ended")
        wanted: set[str] = {
            "": set(SUBSCRIPTION_STATUSES) - {"canceled"},  # none given: every subscription not canceled
            "all": set(SUBSCRIPTION_STATUSES),
            "ended": {"canceled", "incomplete_expired"},
        }.get(status, {status})
        customer = (query.get("customer") or [""])[0]
        created = _parse_range(query, "created")
        return [
            s
            for s in view["subscriptions"]
            if s["status"] in wanted
            and (not customer or s["customer"] == customer)
            and _in_range(s["created"], created)
        ]

    @staticmethod
    def _invoices(view: Mapping[str, Any], query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        status = (query.get("status") or [""])[0]
        if status and status not in INVOICE_STATUSES:
            raise StripeError(400, f"Invalid status: must be one of {', '.join(INVOICE_STATUSES)}", param="status")
        customer = (query.get("customer") or [""])[0]
        subscription = (query.get("subscription") or [""])[0]
        created = _parse_range(query, "created")

        def of_subscription(i: Mapping[str, Any]) -> str | None:
            return ((i.get("parent") or {}).get("subscription_details") or {}).get("subscription")

        return [
            i
            for i in view["invoices"]
            if (not status or i["status"] == status)
            and (not customer or i["customer"] == customer)
            and (not subscription or of_subscription(i) == subscription)
            and _in_range(i["created"], created)
        ]

    def _events(self, view: Mapping[str, Any], query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        single, several = query.get("type", []), query.get("types[]", []) + query.get("types", [])
        if single and several:
            raise StripeError(400, "You may pass either `type` or `types`, but not both.", param="types")
        if len(several) > 20:
            raise StripeError(400, "You may pass at most 20 `types`.", param="types")
        patterns = [re.compile("^" + re.escape(t).replace(r"\*", ".*") + "$") for t in single + several]
        created = _parse_range(query, "created")
        return [
            e
            for e in view["events"]
            if (not patterns or any(p.match(e["type"]) for p in patterns)) and _in_range(e["created"], created)
        ]

    def _page(self, path: str, query: Mapping[str, list[str]], items: list[dict[str, Any]]) -> dict[str, Any]:
        """One page of `items` (newest first): `limit`, `starting_after` / `ending_before`."""
        raw_limit = (query.get("limit") or [str(DEFAULT_LIMIT)])[0]
        limit = _integer(raw_limit, "limit")
        if not 1 <= limit <= MAX_LIMIT:
            raise StripeError(
                400,
                f"Invalid limit: must be between 1 and {MAX_LIMIT}",
                code="parameter_invalid_integer",
                param="limit",
            )
        after, before = (query.get("starting_after") or [""])[0], (query.get("ending_before") or [""])[0]
        if after and before:
            raise StripeError(
                400,
                "You may only specify one of these parameters: starting_after, ending_before.",
                param="ending_before",
            )
        ids = [item["id"] for item in items]
        if after or before:
            cursor = after or before
            if cursor not in ids:
                raise StripeError(
                    404,
                    f"No such object: '{cursor}'",
                    code="resource_missing",
                    param="starting_after" if after else "ending_before",
                )
            at = ids.index(cursor)
            if after:
                chunk, more = items[at + 1 : at + 1 + limit], at + 1 + limit < len(items)
            else:
                start = max(0, at - limit)
                chunk, more = items[start:at], start > 0
        else:
            chunk, more = items[:limit], limit < len(items)
        return {"object": "list", "data": chunk, "has_more": more, "url": path}

    # -- admin ------------------------------------------------------------------------------------

    def _admin(self, h: BaseHTTPRequestHandler, method: str, path: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            body = json.loads(h.rfile.read(length) or b"{}") if length else {}
            if path == "/_admin/clock":
                if method == "POST" and "now" in body:
                    self.set_clock(datetime.fromisoformat(body["now"]))
                return self._send(h, 200, {"now": self.now.isoformat()})
            if path == "/_admin/fault" and method == "POST":
                self.inject_fault(body.pop("path"), str(body.pop("kind")), **body)
                return self._send(h, 200, {"faults": len(self.faults)})
            if path == "/_admin/records" and method == "POST":
                sid = self.change_record(
                    body["entity"], body["id"], body.get("set") or {}, delete=bool(body.get("delete"))
                )
                return self._send(h, 200, {"id": sid, "updated_at": self.store.now})
            return self._send(h, 404, StripeError(404, "Not Found").body())
        except (KeyError, TypeError, ValueError) as exc:
            return self._send(h, 400, StripeError(400, f"bad admin call: {exc}").body())


def _expanded(customer: dict[str, Any], expand_tax_ids: bool) -> dict[str, Any]:
    """A customer as served: `tax_ids` only when expanded (API 2020-08-27 and later)."""
    if expand_tax_ids or customer.get("deleted"):
        return customer
    return {k: v for k, v in customer.items() if k != "tax_ids"}


def _masked(key: str) -> str:
    """A key as Stripe's errors show it: its prefix, stars and the last four characters."""
    prefix = key.rsplit("_", 1)[0] + "_" if key.count("_") >= 2 else ""
    return f"{prefix}{'*' * max(0, len(key) - len(prefix) - 4)}{key[-4:]}"
