"""The HubSpot CRM connector (API v3 objects and search, v4 associations): a dlt source whose streams
land raw versions in `raw_hubspot`.

Streams (raw tables), each row a `landing.version_row` whose `doc` is the record as the API gave it:

- `companies`, `contacts`, `calls`, `emails`, `meetings`: incremental on the last-modified property
  (`hs_lastmodifieddate`; `lastmodifieddate` for contacts) through `POST /crm/v3/objects/{type}/search`
  (`_Api.changed`): ordered by it, paged by keys, never by offsets (a query never reaches the search's
  10,000-result cap, and a record changed while the night pages shifts no page), from the cursor minus
  the lookback (dlt's `lag`, which also covers the search index's lag) to the moment the extraction
  started (`started_at`). A timestamp holding more records than a page is drained by `hs_object_id`.
- `deals`: the changed deals found so, then read by `POST /crm/v3/objects/deals/batch/read` with
  `propertiesWithHistory=dealstage` (50 a request): the doc carries every stage entry, re-entries
  included (MAPPING.md says why not `hs_v2_date_entered_*`).
- `associations`: v4 batch reads (`POST /crm/v4/associations/{from}/{to}/batch/read`) of the records a
  stream landed: deals -> companies, contacts (roles as labels), calls, emails, meetings; calls/emails/meetings ->
  deals, companies, contacts. One row per (from type, from id, to type), `record_id`
  `<from>:<id>:<to>`, `updated_at` the from record's last change; a record without associations
  lands `{"from": {"id": ...}, "to": []}` (HubSpot leaves it out of the answer).
- deletions: archived records are not searchable; every night `GET /crm/v3/objects/{type}?archived=true`
  lists them, and each lands a version with `is_deleted = true` (`updated_at` its `archivedAt`) in
  its object's table (stream `archived`; a version already landed is not stored again).
- `account` (`GET /account-info/v3/details`): the portal's company currency (`companyCurrency`), the
  currency of a deal without `deal_currency_code` (a portal without multiple currencies); read
  every night, a version stored only when it changed.
- `property_roles`: not an API answer but the settings: which custom property of the portal carries a
  company's tax id and a deal's lead source and expected close date (their internal names differ per
  portal), so that the dbt models need no per-portal configuration.
- `owners` (`/crm/v3/owners`, active then `archived=true`) and `pipelines` (`/crm/v3/pipelines/deals`):
  read whole every night, `updated_at` their `updatedAt` (their `createdAt` when first landed: `_Known`).

Requests go through two `landing.api_session`s, each with its own token bucket: one under the app's
ten-second limit (100 requests in ten seconds on Free/Starter portals: 9 a second, burst 5) and one
for search under its own per-second limit (5 a second per account: 4, burst 1), since search is
exempt from the ten-second limit and limited apart. Both retry 429 (HubSpot sends no `Retry-After`:
exponential backoff) and 5xx. A refused token (401) or scope (403) raises `HubSpotRefused` (a
`landing.SourceRefused`: the night fails at once) naming the connection, never the token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
import requests

from b2b_pipeline.sources.landing import RequestCounter, SourceRefused, api_session, raw_resource, version_row

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_PAGE_MAX = 200  # "The maximum number of supported objects per page is 200" (search docs)
LIST_PAGE_MAX = 100
HISTORY_BATCH_MAX = 50  # batch read inputs with propertiesWithHistory
ASSOCIATION_BATCH_MAX = 1_000
OWNERS_PAGE_MAX = 500
PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": (
        "name",
        "domain",
        "industry",
        "country",
        "numberofemployees",
        "tax_id",
        "hubspot_owner_id",
        "createdate",
        "hs_lastmodifieddate",
    ),
    "contacts": (
        "firstname",
        "lastname",
        "email",
        "phone",
        "jobtitle",
        "associatedcompanyid",
        "hubspot_owner_id",
        "createdate",
        "lastmodifieddate",
    ),
    "deals": (
        "dealname",
        "amount",
        "deal_currency_code",
        "pipeline",
        "dealstage",
        "closedate",
        "closed_lost_reason",
        "expected_close_date",
        "lead_source",
        "hubspot_owner_id",
        "createdate",
        "hs_lastmodifieddate",
    ),
    "calls": ("hs_timestamp", "hubspot_owner_id", "hs_call_direction", "hs_call_status", "hs_lastmodifieddate"),
    "emails": ("hs_timestamp", "hubspot_owner_id", "hs_email_direction", "hs_email_status", "hs_lastmodifieddate"),
    "meetings": ("hs_timestamp", "hubspot_owner_id", "hs_activity_type", "hs_meeting_outcome", "hs_lastmodifieddate"),
}
ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    # a deal's engagements too: an engagement linked to a deal created after it is found from the deal's
    # side (linking changes neither record's last-modified date, and the engagement is not read again)
    "deals": ("companies", "contacts", "calls", "emails", "meetings"),
    "calls": ("deals", "companies", "contacts"),
    "emails": ("deals", "companies", "contacts"),
    "meetings": ("deals", "companies", "contacts"),
}


class HubSpotError(RuntimeError):
    """A HubSpot answer the connector cannot go on with; the message names the connection, never the token."""


class HubSpotRefused(HubSpotError, SourceRefused):
    """HubSpot refused the token (401) or a scope it needs (403): the night fails without retrying."""


@dataclass(frozen=True)
class HubSpotSettings:
    """How to read one HubSpot portal.

    `tax_id_property`, `lead_source_property`, `expected_close_date_property`: the internal names of
    the portal's custom properties that carry what HubSpot has no property for (a company's tax id, a
    deal's lead source and expected close date); the stream `property_roles` records them for the
    staging models.
    `lookback_seconds`: how far before its cursor each incremental stream re-reads (the search index
    is eventually consistent: a change can become searchable after later ones).
    `requests_per_second` / `burst`: the client-side limit of every request but searches, under the
    app's ten-second limit (100 in ten seconds on Free and Starter, 190 on Professional and
    Enterprise); `search_requests_per_second` / `search_burst`: that of searches (5 a second per account).
    """

    connection_name: str = "hubspot_default"
    lookback_seconds: float = 3600
    # the portal's custom properties (internal names) for what HubSpot does not carry
    tax_id_property: str = "tax_id"  # companies
    lead_source_property: str = "lead_source"  # deals
    expected_close_date_property: str = "expected_close_date"  # deals: a date property
    requests_per_second: float = 9.0  # with the burst, at most 95 in any ten seconds
    burst: int = 5
    search_requests_per_second: float = 4.0  # with the burst, at most 5 in any second
    search_burst: int = 1
    page_limit: int = SEARCH_PAGE_MAX
    timeout: float = 30.0
    max_attempts: int = 6
    backoff_factor: float = 1.0
    max_delay: float = 60.0


def custom_property_names(settings: HubSpotSettings) -> dict[str, str]:
    """The portal's custom property of each role (the default name -> the configured one)."""
    return {
        "tax_id": settings.tax_id_property,
        "lead_source": settings.lead_source_property,
        "expected_close_date": settings.expected_close_date_property,
    }


def properties_to_read(settings: HubSpotSettings) -> dict[str, tuple[str, ...]]:
    """`PROPERTIES` with the portal's own names of the custom properties."""
    names = custom_property_names(settings)
    return {kind: tuple(names.get(name, name) for name in wanted) for kind, wanted in PROPERTIES.items()}


def last_modified_property(object_type: str) -> str:
    """The property that dates a record's last change: `lastmodifieddate` for contacts (search docs)."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def parse_time(text: Any) -> datetime | None:
    """A HubSpot datetime (ISO 8601 with `Z`, or epoch milliseconds) in UTC."""
    if text in (None, ""):
        return None
    value = str(text)
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class _Api:
    """Requests to one portal: auth header, the two rate limits, error translation."""

    def __init__(self, base_url: str, token: str, settings: HubSpotSettings, counter: RequestCounter | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = settings.connection_name
        self.settings = settings
        common = {
            "timeout": settings.timeout,
            "max_attempts": settings.max_attempts,
            "backoff_factor": settings.backoff_factor,
            "max_delay": settings.max_delay,
            "counter": counter,
        }
        self.session = api_session(settings.requests_per_second, settings.burst, **common)
        self.search_session = api_session(settings.search_requests_per_second, settings.search_burst, **common)
        for session in (self.session, self.search_session):
            session.headers["Authorization"] = f"Bearer {token}"
            session.headers["Accept"] = "application/json"

    def _where(self, path: str) -> str:
        return f"HubSpot connection '{self.name}' ({path})"

    def call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        """One answer (200 or 207) as JSON; an error names the connection and what HubSpot said."""
        session = self.search_session if path.endswith("/search") else self.session
        try:
            r = session.request(method, self.base_url + path, params=params, json=body)
        except requests.RequestException as exc:
            # `from None`: a malformed header's error would carry the token into a chained traceback
            raise HubSpotError(f"{self._where(path)}: {type(exc).__name__} after retries") from None
        if r.status_code in (401, 403):
            what = "the access token was refused" if r.status_code == 401 else "a scope is missing"
            raise HubSpotRefused(
                f"{self._where(path)}: {what} ({r.status_code} {_detail(r)}); "
                "update the private app's token or scopes in the connection"
            )
        if r.status_code >= 400:
            raise HubSpotError(f"{self._where(path)}: HTTP {r.status_code} after retries ({_detail(r)})")
        try:
            answer = r.json()
        except ValueError as exc:
            raise HubSpotError(f"{self._where(path)}: the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise HubSpotError(f"{self._where(path)}: expected a JSON object, got {type(answer).__name__}")
        return answer

    # -- search --------------------------------------------------------------------------------

    def _search(self, object_type: str, filters: list[dict[str, Any]], sort: str, properties: Sequence[str]) -> dict:
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": min(self.settings.page_limit, SEARCH_PAGE_MAX),
        }
        return self.call("POST", f"/crm/v3/objects/{object_type}/search", body=body)

    def _more(self, answer: Mapping[str, Any], rows: list[Any]) -> bool:
        return bool((answer.get("paging") or {}).get("next")) or len(rows) >= min(
            self.settings.page_limit, SEARCH_PAGE_MAX
        )

    def changed(
        self, object_type: str, since: datetime, until: datetime, properties: Sequence[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """The records changed in [since, until], oldest change first, each once, paged by keys: every
        query asks for the first page from the last timestamp read (`GTE`, skipping the ids already
        read at that timestamp), so no query pages past the search's 10,000 results and no change
        made while paging shifts a page. A page entirely at one timestamp is drained by
        `hs_object_id` (`_drain`), then the reading goes on after that timestamp (`GT`)."""
        prop = last_modified_property(object_type)
        lower, operator, tied_at, tied = _ms(since), "GTE", None, set()
        upper = {"propertyName": prop, "operator": "LTE", "value": str(_ms(until))}
        while True:
            answer = self._search(
                object_type,
                [{"propertyName": prop, "operator": operator, "value": str(lower)}, upper],
                prop,
                properties,
            )
            rows = list(answer.get("results") or [])
            stamps = [_ms(parse_time(r["properties"][prop])) for r in rows]
            fresh = [r for r, t in zip(rows, stamps, strict=True) if not (t == tied_at and r["id"] in tied)]
            if fresh:
                yield fresh
            if not rows or not self._more(answer, rows):
                return
            first, last = stamps[0], stamps[-1]
            if first != last:
                tied_at = last
                tied = {r["id"] for r, t in zip(rows, stamps, strict=True) if t == last}
                lower, operator = last, "GTE"
                continue
            seen = (tied if tied_at == last else set()) | {r["id"] for r in rows}
            log.info(
                "HubSpot %s: more than a page changed at %s, read by id", object_type, rows[-1]["properties"][prop]
            )
            yield from self._drain(object_type, prop, last, properties, seen)
            lower, operator, tied_at, tied = last, "GT", None, set()

    def _drain(
        self, object_type: str, prop: str, stamp: int, properties: Sequence[str], seen: set[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """The records changed at exactly `stamp` not in `seen`, by `hs_object_id` keys."""
        after_id = 0
        while True:
            filters = [
                {"propertyName": prop, "operator": "EQ", "value": str(stamp)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)},
            ]
            answer = self._search(object_type, filters, "hs_object_id", properties)
            rows = list(answer.get("results") or [])
            fresh = [r for r in rows if r["id"] not in seen]
            seen.update(r["id"] for r in fresh)
            if fresh:
                yield fresh
            if not rows or not self._more(answer, rows):
                return
            after_id = max(int(r["id"]) for r in rows)

    # -- reads -----------------------------------------------------------------------------------

    def batch_read(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str], history: Sequence[str]
    ) -> Iterator[dict[str, Any]]:
        """The records of `ids` (those archived meanwhile are left out: 207), 50 a request with history."""
        size = HISTORY_BATCH_MAX if history else LIST_PAGE_MAX
        for start in range(0, len(ids), size):
            body = {
                "inputs": [{"id": i} for i in ids[start : start + size]],
                "properties": list(properties),
                "propertiesWithHistory": list(history),
            }
            answer = self.call("POST", f"/crm/v3/objects/{object_type}/batch/read", body=body)
            yield from answer.get("results") or []

    def associations(self, src: str, dst: str, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Each id's associations to `dst` as one v4 result (`from`, `to`), the pages of an id's
        associations joined; an id without any gets an empty `to`."""
        path = f"/crm/v4/associations/{src}/{dst}/batch/read"
        for start in range(0, len(ids), ASSOCIATION_BATCH_MAX):
            chunk = ids[start : start + ASSOCIATION_BATCH_MAX]
            found: dict[str, dict[str, Any]] = {}
            pending: list[dict[str, Any]] = [{"id": i} for i in chunk]
            while pending:
                answer = self.call("POST", path, body={"inputs": pending})
                pending = []
                for result in answer.get("results") or []:
                    key = str(result["from"]["id"])
                    if key in found:
                        found[key]["to"].extend(result.get("to") or [])
                    else:
                        found[key] = {"from": result["from"], "to": list(result.get("to") or [])}
                    after = ((result.get("paging") or {}).get("next") or {}).get("after")
                    if after:
                        pending.append({"id": key, "after": after})
            for i in chunk:
                yield found.get(str(i), {"from": {"id": str(i)}, "to": []})

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The `results` of each page of a list endpoint, following `paging.next.after`."""
        after = None
        while True:
            answer = self.call("GET", path, params={**params, **({"after": after} if after else {})})
            yield list(answer.get("results") or [])
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return


def _detail(r: requests.Response) -> str:
    """HubSpot's category and message of an error answer (never the request's headers)."""
    try:
        body = r.json()
    except ValueError:
        return "no JSON body"
    if not isinstance(body, dict):
        return "no error body"
    kind = body.get("category") or body.get("policyName") or body.get("errorType") or "error"
    return f"{kind}: {str(body.get('message') or '')[:200]}"


class _Known:
    """The ids of a list read whole (owners, pipelines) already landed, in the resource's dlt state.
    A record first seen is dated by its `createdAt`, later versions by their `updatedAt`: on a
    first sync a pipeline edited after the night's cutoff (its `updatedAt` after it) still has a
    version before the cutoff, or every deal in it would lose its stage that night."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.ids: list[str] = state.setdefault("known_ids", [])
        self._set = set(self.ids)

    def stamp(self, record: Mapping[str, Any]) -> datetime | None:
        key = str(record["id"])
        if key in self._set:
            return parse_time(record.get("updatedAt"))
        self._set.add(key)
        self.ids.append(key)
        return parse_time(record.get("createdAt") or record.get("updatedAt"))


def _association_rows(api: _Api, src: str, landed: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The association rows of the records just landed (`record_id` `<src>:<id>:<dst>`)."""
    stamps = {row["record_id"]: row["updated_at"] for row in landed}
    ids = list(stamps)
    for dst in ASSOCIATIONS.get(src, ()):
        for result in api.associations(src, dst, ids):
            key = str(result["from"]["id"])
            yield version_row(f"{src}:{key}:{dst}", stamps[key], result)


@dlt.source(name="hubspot", max_table_nesting=0)
def hubspot_source(
    base_url: str,
    token: str,
    *,
    settings: HubSpotSettings = HubSpotSettings(),
    counter: RequestCounter | None = None,
    started_at: datetime | None = None,
) -> Any:
    """The HubSpot streams of the portal behind `base_url` (https://api.hubapi.com, or a proxy or fake).

    `started_at` (default: now) bounds every incremental request (`LTE`), so that no cursor moves past
    the moment the extraction started. `counter` counts the requests sent, retries included.
    """
    api = _Api(base_url, token, settings, counter)
    properties = properties_to_read(settings)
    until = (started_at or datetime.now(UTC)).astimezone(UTC)
    lag = float(settings.lookback_seconds)

    def version(object_type: str, record: Mapping[str, Any]) -> dict[str, Any]:
        stamp = parse_time(record["properties"].get(last_modified_property(object_type))) or parse_time(
            record.get("updatedAt")
        )
        return version_row(record["id"], stamp, record)

    def changed_stream(object_type: str) -> Any:
        @raw_resource(object_type)
        def stream(
            updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008 - dlt's idiom
                "updated_at", initial_value=EPOCH, lag=lag
            ),
        ) -> Iterator[Any]:
            since = max(EPOCH, updated_at.start_value or EPOCH)  # the cursor minus the lookback (dlt's lag)
            for page in api.changed(object_type, since, until, properties[object_type]):
                if object_type == "deals":  # the deals again, with every stage entry
                    ids = [r["id"] for r in page]
                    page = list(api.batch_read("deals", ids, properties["deals"], ("dealstage",)))
                rows = [version(object_type, r) for r in page]
                late = [r for r in rows if r["updated_at"] is not None and r["updated_at"] > until]
                if late:  # changed again since the search (read by the next night): the cursor stays <= until
                    rows = [r for r in rows if r not in late]
                if rows:
                    yield rows
                    if object_type in ASSOCIATIONS:
                        links = list(_association_rows(api, object_type, rows))
                        if links:
                            yield dlt.mark.with_table_name(links, "associations")

        return stream

    @raw_resource("archived")
    def archived() -> Iterator[Any]:
        """Archived (deleted) records, as deletion versions in their object's table."""
        for object_type in properties:
            params = {"archived": "true", "limit": LIST_PAGE_MAX, "properties": ",".join(properties[object_type])}
            for page in api.pages(f"/crm/v3/objects/{object_type}", params):
                rows = [
                    version_row(r["id"], parse_time(r.get("archivedAt") or r.get("updatedAt")), r, is_deleted=True)
                    for r in page
                ]
                if rows:
                    yield dlt.mark.with_table_name(rows, object_type)

    @raw_resource("account")
    def account() -> Iterator[dict[str, Any]]:
        details = api.call("GET", "/account-info/v3/details")
        yield version_row(details.get("portalId") or "account", None, details)

    @raw_resource("property_roles")
    def property_roles() -> Iterator[dict[str, Any]]:
        """Not an API answer: which custom property carries each role in this portal (settings)."""
        names = custom_property_names(settings)
        deals = {role: names[role] for role in ("lead_source", "expected_close_date")}
        doc = {"companies": {"tax_id": names["tax_id"]}, "deals": deals}
        yield version_row("properties", None, doc)

    @raw_resource("owners")
    def owners() -> Iterator[list[dict[str, Any]]]:
        known = _Known(dlt.current.resource_state())
        for flag in ("false", "true"):
            for page in api.pages("/crm/v3/owners", {"archived": flag, "limit": OWNERS_PAGE_MAX}):
                yield [version_row(o["id"], known.stamp(o), o) for o in page]

    @raw_resource("pipelines")
    def pipelines() -> Iterator[list[dict[str, Any]]]:
        known = _Known(dlt.current.resource_state())
        answer = api.call("GET", "/crm/v3/pipelines/deals")
        yield [version_row(p["id"], known.stamp(p), p) for p in answer.get("results") or []]

    return (
        account,
        property_roles,
        owners,
        pipelines,
        *(changed_stream(t) for t in ("companies", "contacts", "deals", "calls", "emails", "meetings")),
        archived,
    )
