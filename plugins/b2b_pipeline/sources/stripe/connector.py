"""The Stripe (API v1) billing connector: a dlt source whose streams land raw versions in `raw_stripe`.

Streams (raw tables), each row a `landing.version_row` whose `doc` is the object as the API gave it:

- `customers` (`GET /v1/customers?expand[]=data.tax_ids`: the tax ids are not served unless
  expanded; the CRM account id in `metadata.crm_account_id`),
- `subscriptions` (`GET /v1/subscriptions?status=all`: without it the canceled ones are left out;
  items with their price, quantity and recurring interval),
- `invoices` (`GET /v1/invoices`: every status; `status_transitions`, `metadata.deal_id`).

**A night.** Each stream keeps one cursor in dlt's resource state (where `dlt.sources.incremental`
keeps its own, in the warehouse beside the data, committed only with the rows it covers): every
event created at or before it has been applied. A night first pages the Events API
(`GET /v1/events`, `created[gt]=<cursor>`, `limit`, `starting_after`, newest first) for the
stream's event types, then:

- the **first sync**, or a cursor **older than the 30 days** Stripe keeps events (with an hour of
  margin; judged against the service's clock, the `Date` header of its first answer, never the
  local clock) lists the whole stream (`starting_after` paging, `limit` 100);
- a **later night** applies the events only: a subscription's or invoice's event lands its
  `data.object` **as is**, a version of the object at the event's time (exactly the state then,
  at no extra request; re-fetching would give the state of now dated at the event's time, and
  one request per change); a customer's event (`customer.created|updated`, `customer.tax_id.*`) makes
  the connector **re-fetch** the customer once (`GET /v1/customers/{id}?expand[]=tax_ids`), dated
  at its latest event, because an event's object is never expanded: without the re-fetch a
  changed customer would lose its tax id. `customer.deleted` (and `invoice.deleted`, a deleted
  draft) land a version with `is_deleted = true` (its doc: the event's object).

The cursor moves to the second before the service's clock at the night's first answer (or the
`started_at` given, if earlier): an event created during the night is read the next night.

**`updated_at` of a version** (Stripe objects have no change time): an event's `created` for what
the events give; for a listed object, the latest of (a) its latest event's `created` when the
window still holds one (the listed object then equals that event's object: one version), (b) the
latest timestamp the object carries (`created`, `start_date`, `canceled_at`, `ended_at`,
`trial_start`, `trial_end`, `status_transitions.*`, those not after the page's `Date`: a moment at
or before its last change) and (c) on a re-list after a stale cursor, the old cursor (whatever
differs from what was landed changed after it). So a night that runs after its cutoff (04:00 for
the night before) still sees every object as of the cutoff: a list read stamped with the read's
time would hide every record from that night. Known limit: a change without a timestamp of its own
(a new price, a renamed customer) made while a full list pages, or in the gap of a stale cursor
before the 30 days of events, is dated at that lower bound, earlier than it happened: a night
whose cutoff lies between the two shows it a night early.

Requests go through `landing.api_session` (a token bucket under Stripe's documented 25 requests a
second in test mode and per endpoint, retries of 429, 5xx and connection errors with backoff,
honouring `Retry-After` when sent), with `Stripe-Version` pinned on every request
(`StripeSettings.api_version`). A refused key (401) or a key without the permission (403) raises
`StripeRefused` (a `landing.SourceRefused`: the night fails at once) naming the connection, never
the key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import dlt

from b2b_pipeline.sources.landing import RequestCounter, SourceRefused, api_session, raw_resource, version_row

log = logging.getLogger(__name__)

API_VERSION = "2025-03-31.basil"  # the version whose shapes staging reads (parent.subscription_details...)
MAX_PAGE_LIMIT = 100  # Stripe's `limit` is 1..100
EVENT_RETENTION = timedelta(days=30)  # "List events, going back up to 30 days"
RETENTION_MARGIN = timedelta(hours=1)  # a cursor this close to the edge re-lists rather than risk a gap


class StripeError(RuntimeError):
    """A Stripe answer the connector cannot go on with; the message names the connection, never the key."""


class StripeRefused(StripeError, SourceRefused):
    """Stripe refused the key (401) or its permissions (403): the night fails without retrying."""


@dataclass(frozen=True)
class StripeSettings:
    """How to read one Stripe account.

    `requests_per_second` / `burst`: the client-side limit, under Stripe's 25 a second (test mode,
    and per endpoint in live mode). `page_limit`: objects a page (at most 100). `api_version`: the
    `Stripe-Version` sent with every request, the shapes the staging models read.
    """

    connection_name: str = "stripe_default"
    requests_per_second: float = 18.0  # with the burst, at most 23 in any one second
    burst: int = 5
    page_limit: int = 100
    api_version: str = API_VERSION
    timeout: float = 60.0
    max_attempts: int = 6
    backoff_factor: float = 1.0
    max_delay: float = 60.0


@dataclass(frozen=True)
class _Stream:
    """One stream: its list, its list's parameters, its event types and how its events apply."""

    name: str
    path: str
    params: Mapping[str, str]
    event_params: Mapping[str, Any]
    refetch: bool = False  # re-fetch a changed object (customers: an event's object is not expanded)


STREAMS = (
    _Stream(
        "customers",
        "/v1/customers",
        {"expand[]": "data.tax_ids"},
        {
            "types[]": [
                "customer.created",
                "customer.updated",
                "customer.deleted",
                "customer.tax_id.created",
                "customer.tax_id.updated",
                "customer.tax_id.deleted",
            ]
        },
        refetch=True,
    ),
    _Stream("subscriptions", "/v1/subscriptions", {"status": "all"}, {"type": "customer.subscription.*"}),
    _Stream("invoices", "/v1/invoices", {}, {"type": "invoice.*"}),
)


class _Api:
    """GETs against one account: auth and version headers, error translation, `starting_after` paging."""

    def __init__(self, base_url: str, api_key: str, settings: StripeSettings, counter: RequestCounter | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = settings.connection_name
        self.session = api_session(
            settings.requests_per_second,
            settings.burst,
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            backoff_factor=settings.backoff_factor,
            max_delay=settings.max_delay,
            counter=counter,
        )
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.session.headers["Stripe-Version"] = settings.api_version

    def where(self, path: str) -> str:
        return f"Stripe connection '{self.name}' ({path})"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], datetime]:
        """One answer as JSON, and the service's clock when it answered (its `Date` header)."""
        import requests

        try:
            r = self.session.get(self.base_url + path, params=params)
        except requests.RequestException as exc:
            raise StripeError(f"{self.where(path)}: no answer after retries ({type(exc).__name__})") from None
        if r.status_code == 401:
            raise StripeRefused(
                f"{self.where(path)}: the API key was refused (401 Unauthorized); "
                "put a valid secret or restricted key in the connection"
            )
        if r.status_code == 403:
            raise StripeRefused(
                f"{self.where(path)}: the API key lacks the permission (403 Forbidden); "
                "give the restricted key read access to customers, subscriptions, invoices and events"
            )
        if r.status_code >= 400:
            raise StripeError(f"{self.where(path)}: HTTP {r.status_code}: {_message(r)}")
        try:
            body = r.json()
        except ValueError:
            raise StripeError(f"{self.where(path)}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise StripeError(f"{self.where(path)}: expected a JSON object, got {type(body).__name__}")
        return body, _service_time(r.headers.get("Date"))

    def pages(
        self, path: str, params: Mapping[str, Any], limit: int
    ) -> Iterator[tuple[list[dict[str, Any]], datetime]]:
        """Every page of a list, newest first, by `starting_after` until `has_more` is false."""
        query: dict[str, Any] = {**params, "limit": limit}
        while True:
            body, clock = self.get(path, query)
            items = list(body.get("data") or [])
            yield items, clock
            if not body.get("has_more") or not items:
                return
            query["starting_after"] = items[-1]["id"]


def _message(response: Any) -> str:
    """Stripe's error message (never a key: Stripe masks it, and 401s are not shown at all)."""
    try:
        return str(response.json()["error"].get("message") or "")[:300]
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.reason or ""


def _service_time(header: str | None) -> datetime:
    """The service's clock from its `Date` header (the local clock only when the header is missing)."""
    if header:
        try:
            return parsedate_to_datetime(header).astimezone(UTC)
        except (TypeError, ValueError):
            log.warning("Stripe: unreadable Date header %r", header)
    return datetime.now(UTC)


def _at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(int(seconds), UTC)


def _in_second(seconds: int, newer: int) -> datetime:
    """A version's `updated_at` within Stripe's whole second `seconds`: the last microsecond of it, less
    one for each version of the same object in that second that is newer (`newer`). Events are
    whole seconds; without this, the staging models' tie-break (the later extraction) would pick
    the oldest of an invoice's created, finalized and paid events, which the events list serves
    newest first."""
    return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=999_999 - newer)


def known_change_time(obj: Mapping[str, Any], until: int) -> int:
    """The latest timestamp the object carries, at or before `until`: a moment at or before its last change."""
    stamps = [obj.get(k) for k in ("created", "start_date", "canceled_at", "ended_at", "trial_start", "trial_end")]
    stamps += list((obj.get("status_transitions") or {}).values())
    known = [int(s) for s in stamps if isinstance(s, int | float) and int(s) <= until]
    return max(known) if known else 0


def _event_subject(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The id of the object an event is about, and its object (a tax id's customer for customer.tax_id.*)."""
    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("object") == "tax_id":
        owner = obj.get("customer") or (obj.get("owner") or {}).get("customer")
        return str(owner), obj
    return str(obj.get("id")), obj


@dlt.source(name="stripe", max_table_nesting=0)
def stripe_source(
    base_url: str,
    api_key: str,
    *,
    settings: StripeSettings = StripeSettings(),
    counter: RequestCounter | None = None,
    started_at: datetime | None = None,
) -> Any:
    """The Stripe streams of one account at `base_url` (https://api.stripe.com, or a fake).

    `started_at` (default: none) also bounds the cursors: no cursor moves past it, nor past the
    service's clock at the night's first answer. `counter` counts the requests sent, retries included.
    """
    api = _Api(base_url, api_key, settings, counter)
    limit = max(1, min(settings.page_limit, MAX_PAGE_LIMIT))

    def stream_resource(stream: _Stream) -> Any:
        @raw_resource(stream.name)
        def read() -> Iterator[list[dict[str, Any]]]:
            state = dlt.current.resource_state()
            yield from _night(api, stream, state, limit, started_at)

        return read

    return tuple(stream_resource(s) for s in STREAMS)


def _night(
    api: _Api, stream: _Stream, state: dict[str, Any], limit: int, started_at: datetime | None
) -> Iterator[list[dict[str, Any]]]:
    """One stream's night (see the module doc); moves `state['cursor']` at the end."""
    cursor: int | None = state.get("cursor")
    params: dict[str, Any] = dict(stream.event_params)
    if cursor is not None:
        params["created[gt]"] = cursor
    upper: int | None = None
    full = cursor is None
    latest: dict[str, int] = {}  # object id -> its latest event's created (this night's events)
    newer: dict[tuple[str, int], int] = {}  # (object id, second) -> its events of that second read so far
    refetch: dict[str, int] = {}
    landed: set[tuple[str, str]] = set()  # (id, _version) landed tonight: one load holds a version once
    for events, clock in api.pages("/v1/events", params, limit):
        if upper is None:
            upper = int(min(clock, started_at or clock).timestamp())
            if cursor is not None and _at(cursor) <= clock - EVENT_RETENTION + RETENTION_MARGIN:
                log.warning(
                    "%s: cursor %s is older than the %d days of events Stripe keeps (its clock: %s): listing it whole",
                    api.where(stream.path),
                    _at(cursor),
                    EVENT_RETENTION.days,
                    clock,
                )
                full = True
        rows = []
        for event in events:
            created = int(event["created"])
            if created >= upper:
                continue  # created after the night's start: the next night reads it
            subject, obj = _event_subject(event)
            if not obj.get("id"):
                continue  # no object of the account (invoice.upcoming: a preview without an id)
            latest[subject] = max(latest.get(subject, 0), created)
            deleted = str(event.get("type", "")).endswith(".deleted") and obj.get("object") != "subscription"
            if obj.get("object") == "tax_id" or (stream.refetch and not deleted):
                refetch[subject] = max(refetch.get(subject, 0), created)
            else:
                # events come newest first, and one second often holds several of an object's (an invoice
                # created, finalized and paid): the later the event, the later its instant in that second
                rank = newer.get((subject, created), 0)
                newer[(subject, created)] = rank + 1
                row = version_row(subject, _in_second(created, rank), obj, is_deleted=deleted)
                if (subject, row["_version"]) not in landed:  # invoice.paid and .payment_succeeded: one object
                    landed.add((subject, row["_version"]))
                    rows.append(row)
        if rows:
            yield rows
    assert upper is not None  # the events list always answers a page
    if full:
        yield from _list_all(api, stream, limit, latest, cursor, landed)
    elif refetch:
        yield from _refetch(api, refetch)
    state["cursor"] = upper - 1
    log.info("%s: cursor now %s (%s)", api.where(stream.path), _at(upper - 1), "full list" if full else "events")


def _list_all(
    api: _Api,
    stream: _Stream,
    limit: int,
    latest: Mapping[str, int],
    old_cursor: int | None,
    landed: set[tuple[str, str]],
) -> Iterator[list[dict[str, Any]]]:
    """The whole list, each object dated as the module doc says; an object equal to a version its
    events landed tonight is that version."""
    for items, clock in api.pages(stream.path, stream.params, limit):
        rows = []
        answered = int(clock.timestamp())  # a timestamp after the page's answer is a plan (a trial's end)
        for obj in items:
            stamp = max(known_change_time(obj, answered), latest.get(obj["id"], 0), old_cursor or 0)
            row = version_row(obj["id"], _in_second(stamp, 0), obj)  # after every event of its second
            if (obj["id"], row["_version"]) not in landed:
                rows.append(row)
        yield rows


def _refetch(api: _Api, customers: Mapping[str, int]) -> Iterator[list[dict[str, Any]]]:
    """The changed customers as they are now, with their tax ids, dated at their latest event."""
    rows = []
    for cid, created in sorted(customers.items()):
        obj, _ = api.get(f"/v1/customers/{cid}", {"expand[]": "tax_ids"})
        if obj.get("deleted"):
            continue  # deleted since: its customer.deleted event lands the deletion
        rows.append(version_row(cid, _in_second(created, 0), obj))
        if len(rows) >= 100:
            yield rows
            rows = []
    if rows:
        yield rows
