"""The amoCRM (API v4) connector: a dlt source whose streams land raw versions in `raw_amocrm`.

Streams (raw tables), each row a `landing.version_row` whose `doc` is the record as the API gave it:

- `leads` (`with=contacts,loss_reason`: deals with their contact links), `companies`, `contacts`,
  `tasks` (activities): incremental on `updated_at` (`filter[updated_at][from]` = cursor minus the
  lookback, `[to]` = the moment the extraction started). Leads, companies and contacts are read
  in `order[updated_at]=asc` and paged by keys, not by offsets (`_Api.changed`): a record changed
  while the night pages would otherwise shift the later pages and make the night skip a record for
  good. Tasks cannot be ordered by `updated_at` (only by created_at, complete_till or id): they
  are read by `order[id]` in passes over the window until two passes agree (`_Api.by_id`), as is
  a second that holds more records than a page.
- `events` (`lead_added`, `lead_status_changed`: the stage history; `lead_deleted`,
  `company_deleted`, `contact_deleted`, `task_deleted`): incremental on `created_at`, paged by
  `page` (events cannot be ordered); an event created while paging shifts the pages, so an event
  served twice is landed once. A deletion
  event also lands a version with `is_deleted = true` (its doc: the event) in the entity's table,
  so a deleted lead or company leaves the marts as a deleted file-drop record does.
- `users`, `pipelines` (statuses embedded), `account` (currency, users groups, task types),
  `custom_fields` (definitions of company, contact and lead fields): read whole every night; the
  raw layer stores a version only when it changed.
- `field_roles`: which company custom field carries the tax id and which the web site in this
  account (their ids differ per account), resolved from the settings (an id, a field code or a
  field name) against the account's field definitions. Its doc is not an API answer but the
  resolution, so that the dbt models need no per-account configuration.

The lists read whole and the events follow `_links.next` (`page`/`limit`, at most 250, events 100)
and stop at a page without it or at a `204 No Content`. Requests go through `landing.api_session`
(a token bucket under the documented 7 requests a second, retries of 429 and 5xx with backoff,
honouring `Retry-After` when there is one). A refused token (401) or a blocked client (403)
raises `AmoCRMRefused` (a `landing.SourceRefused`: the night fails at once, no retry) naming the
connection and the URL, never the token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dlt

from b2b_pipeline.sources.landing import RequestCounter, SourceRefused, api_session, raw_resource, version_row

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STAGE_EVENTS = ("lead_added", "lead_status_changed")
DELETION_EVENTS = {
    "lead_deleted": "leads",
    "company_deleted": "companies",
    "contact_deleted": "contacts",
    "task_deleted": "tasks",
}
MALFORMED_RETRIES = 2
MAX_PAGE_LIMIT = 250  # amoCRM's documented maximum of `limit` (events: 100)
MAX_EVENTS_LIMIT = 100


class AmoCRMError(RuntimeError):
    """An amoCRM answer the connector cannot go on with; the message names the connection, never the token."""


class AmoCRMRefused(AmoCRMError, SourceRefused):
    """amoCRM refused the token (401) or the blocked client (403): the night fails without retrying."""


@dataclass(frozen=True)
class AmoCRMSettings:
    """How to read one amoCRM account.

    `tax_id_field` / `web_field`: the company custom field carrying the tax id (ИНН) / the web
    site, as its id, its code or its name (ids differ per account). `lookback_seconds`: how far
    before its cursor each incremental stream re-reads, so that late-visible records are not missed.
    `requests_per_second` / `burst`: the client-side limit, under amoCRM's documented 7 a second.
    """

    connection_name: str = "amocrm_default"
    tax_id_field: int | str = "ИНН"
    web_field: int | str = "WEB"
    lookback_seconds: int = 3600
    requests_per_second: float = 5.0  # with the burst, at most 7 in any one second (amoCRM's limit)
    burst: int = 2
    page_limit: int = 250
    timeout: float = 30.0
    max_attempts: int = 6
    backoff_factor: float = 1.0
    max_delay: float = 60.0


class _Api:
    """GETs against one account: auth header, error translation, paging by `_links.next`."""

    def __init__(self, base_url: str, token: str, settings: AmoCRMSettings, counter: RequestCounter | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = settings.connection_name
        self.settings = settings
        self.session = api_session(
            settings.requests_per_second,
            settings.burst,
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            backoff_factor=settings.backoff_factor,
            max_delay=settings.max_delay,
            counter=counter,
        )
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/hal+json"

    def _where(self, url: str) -> str:
        return f"amoCRM connection '{self.name}' ({url.split('?', 1)[0]})"

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """One answer as JSON, or None for 204 No Content."""
        url = url if url.startswith("http") else self.base_url + url
        for attempt in range(MALFORMED_RETRIES + 1):
            r = self.session.get(url, params=params)
            if r.status_code == 204:
                return None
            if r.status_code == 401:
                raise AmoCRMRefused(
                    f"{self._where(url)}: the access token was refused (401 Unauthorized); "
                    "issue a new long-lived token and update the connection"
                )
            if r.status_code == 403:
                raise AmoCRMRefused(
                    f"{self._where(url)}: access forbidden (403): the account blocks this client, "
                    "after too many requests or for lack of rights; run the night again once the block is lifted"
                )
            if r.status_code >= 400:
                raise AmoCRMError(f"{self._where(url)}: HTTP {r.status_code} after retries")
            try:
                body = r.json()
            except ValueError:
                log.warning("%s: malformed JSON page (attempt %d)", self._where(url), attempt + 1)
                continue
            if not isinstance(body, dict):
                raise AmoCRMError(f"{self._where(url)}: expected a JSON object, got {type(body).__name__}")
            return body
        raise AmoCRMError(f"{self._where(url)}: malformed JSON page, {MALFORMED_RETRIES + 1} times")

    def _same_host(self, href: str) -> str:
        """`href` on the connection's own host: the token is never sent anywhere else."""
        link, base = urlsplit(href), urlsplit(self.base_url)
        if (link.scheme, link.netloc) == (base.scheme, base.netloc):
            return href
        return urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))

    def changed(
        self, path: str, key: str, since: int, until: int, limit: int, extra: Mapping[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The records with `since <= updated_at <= until`, oldest change first, each once, paged by keys
        rather than by offsets: each request starts again at page 1 from the last `updated_at` seen
        (`filter[updated_at][from]`, skipping the ids already read at that second). Offsets would
        shift under a change made while paging (a record read on page 1 moves to the end, every
        later record one place up, and the first of page 2 is never read); keys do not. A second
        with more records than a page is drained by id (`[from]` = `[to]`, `order[id]`), by pages,
        then read again until a pass finds nothing new (a record leaving that second mid-way shifts
        its pages)."""
        lower, tied_at, tied = since, None, set()
        while True:
            params = {
                **extra,
                "limit": limit,
                "order[updated_at]": "asc",
                "filter[updated_at][from]": lower,
                "filter[updated_at][to]": until,
                "page": 1,
            }
            body = self.get(path, params)
            rows = self._items(body, key)
            yield [r for r in rows if not (int(r["updated_at"]) == tied_at and r["id"] in tied)]
            if not self._full(body, rows, limit):
                return
            first, last = int(rows[0]["updated_at"]), int(rows[-1]["updated_at"])
            if first != last:
                tied_at, tied = last, {r["id"] for r in rows if int(r["updated_at"]) == last}
                lower = last
                continue
            seen = (tied if tied_at == last else set()) | {r["id"] for r in rows}
            yield from self._drain_second(path, key, last, limit, extra, seen)
            if last >= until:
                return
            lower, tied_at, tied = last + 1, None, set()

    def _drain_second(
        self, path: str, key: str, second: int, limit: int, extra: Mapping[str, Any], seen: set[Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The records changed at one second not in `seen` (see `by_id`)."""
        yield from self.by_id(path, key, second, second, limit, extra, seen)

    def by_id(
        self, path: str, key: str, since: int, until: int, limit: int, extra: Mapping[str, Any], seen: set[Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The records with `since <= updated_at <= until` not in `seen`, by `order[id]` and pages, pass
        after pass until a pass fits on one page or two passes in a row read the same ids. A record
        that leaves the range while a pass pages (it changed: its `updated_at` is now past `until`)
        shifts the later pages, so that pass may miss one; the next pass, which no longer sees the
        leaver, reads it. Records only leave a past range, so the passes settle."""
        previous: set[Any] | None = None
        while True:
            read: set[Any] = set()
            page = 1
            while True:
                params = {
                    **extra,
                    "limit": limit,
                    "order[id]": "asc",
                    "filter[updated_at][from]": since,
                    "filter[updated_at][to]": until,
                    "page": page,
                }
                body = self.get(path, params)
                rows = self._items(body, key)
                read.update(r["id"] for r in rows)
                fresh = [r for r in rows if r["id"] not in seen]
                seen.update(r["id"] for r in fresh)
                if fresh:
                    yield fresh
                if not self._full(body, rows, limit):
                    break
                page += 1
            if page == 1 or read == previous:
                return
            previous = read

    @staticmethod
    def _items(body: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
        return list(((body or {}).get("_embedded") or {}).get(key) or [])

    @staticmethod
    def _full(body: dict[str, Any] | None, rows: list[dict[str, Any]], limit: int) -> bool:
        """Whether more may follow: a page as long as asked for, or one with a `next` link (amoCRM
        serves a page of 50 when asked for more than it allows)."""
        return len(rows) >= limit or bool(((body or {}).get("_links") or {}).get("next"))

    def pages(self, path: str, key: str, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The `_embedded[key]` list of each page, following `_links.next` until none or a 204."""
        body = self.get(path, {**params, "page": 1})
        while body is not None:
            yield list((body.get("_embedded") or {}).get(key) or [])
            nxt = ((body.get("_links") or {}).get("next") or {}).get("href")
            if not nxt:
                return
            body = self.get(self._same_host(nxt))


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value not in (None, "") else None


def _find_field(defs: list[dict[str, Any]], wanted: int | str, role: str, where: str) -> int:
    """The id of the custom field given by id, code or name."""
    for d in defs:
        if isinstance(wanted, int) or str(wanted).isdigit():
            if d["id"] == int(wanted):
                return d["id"]
        elif wanted in (d.get("code"), d.get("name")):
            return d["id"]
    known = ", ".join(f"{d['id']} {d.get('name')!r}" for d in defs)
    raise AmoCRMError(f"{where}: no company custom field {wanted!r} for the {role} (fields: {known})")


@dlt.source(name="amocrm", max_table_nesting=0)
def amocrm_source(
    base_url: str,
    token: str,
    *,
    settings: AmoCRMSettings = AmoCRMSettings(),
    counter: RequestCounter | None = None,
    started_at: datetime | None = None,
) -> Any:
    """The amoCRM streams of one account at `base_url` (e.g. https://<subdomain>.amocrm.ru).

    `started_at` (default: now) bounds every incremental request (`[to]`), so that no cursor moves
    past the moment the extraction started. `counter` counts the requests sent, retries included.
    """
    api = _Api(base_url, token, settings, counter)
    until = int((started_at or datetime.now(UTC)).timestamp())
    limit = max(1, min(settings.page_limit, MAX_PAGE_LIMIT))  # amoCRM serves a larger one as 50 a page
    lag = float(settings.lookback_seconds)

    def updated_stream(
        name: str, path: str, key: str, extra: Mapping[str, Any] | None = None, *, sortable: bool = True
    ) -> Any:
        """An incremental stream of `path`: by `updated_at` keys when the list can be ordered by it
        (`sortable`), else by id passes over the window (`_Api.by_id`)."""

        @raw_resource(name)
        def stream(
            updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008 - dlt's idiom
                "updated_at", initial_value=EPOCH, lag=lag
            ),
        ) -> Iterator[list[dict[str, Any]]]:
            start = updated_at.start_value or EPOCH
            since = max(0, int(start.timestamp()))  # the cursor minus the lookback (dlt's lag)
            pages = (
                api.changed(path, key, since, until, limit, extra or {})
                if sortable
                else api.by_id(path, key, since, until, limit, extra or {}, set())
            )
            for items in pages:
                yield [version_row(item["id"], _ts(item.get("updated_at")), item) for item in items]

        return stream

    @raw_resource("events")
    def events(
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008 - dlt's idiom
            "updated_at", initial_value=EPOCH, lag=lag
        ),
    ) -> Iterator[Any]:
        start = updated_at.start_value or EPOCH
        since = max(0, int(start.timestamp()))  # the cursor minus the lookback (dlt's lag)
        params = {
            "limit": min(limit, MAX_EVENTS_LIMIT),
            "filter[type]": ",".join((*STAGE_EVENTS, *DELETION_EVENTS)),
            "filter[created_at][from]": since,
            "filter[created_at][to]": until,
        }
        seen: set[str] = set()  # an event created while paging shifts the pages: one may come twice
        for page in api.pages("/api/v4/events", "events", params):
            items = [ev for ev in page if ev["id"] not in seen]
            seen.update(ev["id"] for ev in items)
            yield [version_row(ev["id"], _ts(ev.get("created_at")), ev) for ev in items]
            for ev in items:  # a deletion is also a version of the deleted record, in its own table
                table = DELETION_EVENTS.get(ev.get("type", ""))
                if table:
                    row = version_row(ev["entity_id"], _ts(ev.get("created_at")), ev, is_deleted=True)
                    yield dlt.mark.with_table_name(row, table)

    @raw_resource("users")
    def users() -> Iterator[list[dict[str, Any]]]:
        for items in api.pages("/api/v4/users", "users", {"limit": limit}):
            yield [version_row(u["id"], None, u) for u in items]

    @raw_resource("pipelines")
    def pipelines() -> Iterator[list[dict[str, Any]]]:
        body = api.get("/api/v4/leads/pipelines") or {}
        yield [version_row(p["id"], None, p) for p in (body.get("_embedded") or {}).get("pipelines") or []]

    @raw_resource("account")
    def account() -> Iterator[dict[str, Any]]:
        body = api.get("/api/v4/account", {"with": "users_groups,task_types"})
        if body is None:
            raise AmoCRMError(f"amoCRM connection '{settings.connection_name}': /api/v4/account answered no content")
        yield version_row(body["id"], _ts(body.get("updated_at")), body)

    @raw_resource("custom_fields")
    def custom_fields() -> Iterator[list[dict[str, Any]]]:
        for entity in ("companies", "contacts", "leads"):
            for items in api.pages(f"/api/v4/{entity}/custom_fields", "custom_fields", {"limit": limit}):
                yield [version_row(f"{entity}:{d['id']}", None, d) for d in items]

    @raw_resource("field_roles")
    def field_roles() -> Iterator[dict[str, Any]]:
        """Not an API answer: the ids of the company fields carrying the tax id and the web site."""
        where = f"amoCRM connection '{settings.connection_name}'"
        defs = [
            d
            for items in api.pages("/api/v4/companies/custom_fields", "custom_fields", {"limit": limit})
            for d in items
        ]
        doc = {
            "entity": "companies",
            "tax_id": _find_field(defs, settings.tax_id_field, "tax id", where),
            "web": _find_field(defs, settings.web_field, "web site", where),
            "settings": {"tax_id": settings.tax_id_field, "web": settings.web_field},
        }
        yield version_row("companies", None, doc)

    return (
        account,
        users,
        pipelines,
        custom_fields,
        field_roles,
        updated_stream("companies", "/api/v4/companies", "companies"),
        updated_stream("contacts", "/api/v4/contacts", "contacts"),
        updated_stream("leads", "/api/v4/leads", "leads", {"with": "contacts,loss_reason"}),
        # tasks sort by created_at, complete_till or id only (amoCRM's tasks API reference)
        updated_stream("tasks", "/api/v4/tasks", "tasks", sortable=False),
        events,
    )
