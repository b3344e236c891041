"""A local fake of the HubSpot CRM API (v3 objects, search and pipelines, v4 associations), seeded
from a file drop, for the connector's tests and the demo.

`FakeHubSpot(drop_dir, token=...)` is a real HTTP server on 127.0.0.1 that serves the drop's CRM as of
its clock: every version with `updated_at <= now`, the latest one winning, a deleted version making
the record archived (listed only with `archived=true`, absent from search and batch reads). Between
two nights a test only moves the clock (`set_clock`); hooks change records, inject faults, add many
records sharing one timestamp and delay the search index (as methods, or some as `/_admin/*` calls).

The facts the fake follows are collected, with their sources, in `docs/research/hubspot-api.md` of this
repository. Endpoint -> documentation (SPEC = github.com/HubSpot/HubSpot-public-api-spec-collection,
PublicApiSpecs/CRM/Deals/Rollouts/424/v3/deals.json; NODE = github.com/HubSpot/hubspot-api-nodejs,
codegen/...; PY = github.com/HubSpot/hubspot-api-python; dev: = developers.hubspot.com/docs/...):

- `GET /crm/v3/objects/{companies|contacts|deals|calls|emails|meetings}` (also by object type id
  0-2, 0-1, 0-3, 0-48, 0-49, 0-47): SPEC `get-/crm/v3/objects/0-3_getPage` (limit default 10;
  `after` an opaque cursor, `paging.next` only while more pages follow; `properties`,
  `propertiesWithHistory`, `associations`, `archived` = only archived records, with `archivedAt`);
  NODE crm/objects/models/SimplePublicObjectWithAssociations.ts. The maximum `limit` of 100 (50
  with `propertiesWithHistory`, else 400) comes from client code (dlt-hub PR #206,
  hubspot-api-python#143), not from HubSpot's text; above 100 the fake serves 100 (a GUESS).
- `POST /crm/v3/objects/{type}/search`: dev: api-reference/latest/crm/search-the-crm (filters ANDed in
  a group, groups ORed; at most 5 groups, 6 filters a group, 18 in all -> 400 VALIDATION_ERROR; one
  sort; `limit` at most 200 (more is served as 200, a GUESS); `after` an integer offset; `total`;
  "limited to 10,000 total results for any given query. Attempting to page beyond 10,000 will result
  in a 400 error"; a body over 3,000 characters -> 400; archived records never appear; eventually
  consistent; 5 requests a second per account, no rate-limit headers); default properties and the
  last-modified property per object (`lastmodifieddate` for contacts) from the same page's table;
  NODE crm/objects/models/PublicObjectSearchRequest.ts, PY crm/objects/models/filter.py (operators).
  Ties of the sort come back in no particular order (the fake orders them by a hash of the id).
- `POST /crm/v3/objects/{type}/batch/read` (`inputs`, `properties`, `propertiesWithHistory`): SPEC
  `BatchReadInputSimplePublicObjectId`; at most 100 inputs, 50 with `propertiesWithHistory` (n8n
  client comment quoted in the research, [3p]); unknown ids -> 207 with `errors[]`/`numErrors`.
  `propertiesWithHistory.dealstage` = `ValueWithTimestamp` (`value`, `timestamp`, `sourceType`,
  `sourceId`, `updatedByUserId`: PY crm/objects/models/value_with_timestamp.py), newest first (a
  convention, not documented).
- `POST /crm/v4/associations/{from}/{to}/batch/read`: NODE crm/associations/v4/apis/BatchApi.ts and
  models PublicFetchAssociationsBatchRequest.ts, PublicAssociationMultiWithLabel.ts (`from.id` a
  string, `to[].toObjectId` a number, `associationTypes[{category, typeId, label}]`, per-input
  `paging.next.after` only when more follow); at most 1,000 inputs (dev changelog
  bug-fix-batch-read-limit-for-hubspot-associations-api; the 400 is a GUESS). HUBSPOT_DEFINED type
  ids deal->contact 3, deal->company 5 (341 "Primary"), contact->deal 4, company->deal 6 (Pipedream
  docs, [3p]); engagement->record ids (calls->deals 206 ...) are NOT verified.
- `GET /crm/v3/owners` (`limit` at most 500, `after`, `archived`): NODE crm/owners/models/PublicOwner.ts,
  CollectionResponsePublicOwnerForwardPaging.ts; dev: api-reference/crm-crm-owners-v3/guide (`type`,
  `userIdIncludingInactive`). Archived (deactivated) owners only with `archived=true`.
- `GET /crm/v3/pipelines/deals`: NODE crm/pipelines/models/CollectionResponsePipelineNoPaging.ts,
  Pipeline.ts, PipelineStage.ts (`metadata` values are strings: `probability`, `isClosed`).
- errors `{status: "error", message, correlationId, category}` and `X-HubSpot-Correlation-Id`: PY
  crm/objects/models/error.py; 401 INVALID_AUTHENTICATION ("Authentication credentials not
  found..."), 403 MISSING_SCOPES (hubspot-api-nodejs#268). Auth `Authorization: Bearer <token>`.
- rate limits: dev: developer-tooling/platform/usage-guidelines: a rolling ten-second limit per app
  (100 for Free/Starter: `requests_per_second` * 10) -> 429 `{"status": "error", "message": "You have
  reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName":
  "TEN_SECONDLY_ROLLING", ...}`; search apart (SPEC `x-hubspot-rate-limit-exemptions:
  ["ten-secondly"]`), `search_requests_per_second` (5) -> 429 "You have reached your secondly
  limit." (the message the official Node client matches: NODE src/services/decorators/RetryDecorator.ts);
  a daily limit -> 429 policyName DAILY. Non-search answers carry `X-HubSpot-RateLimit-Daily`,
  `-Daily-Remaining`, `-Interval-Milliseconds`, `-Max`, `-Remaining`. HubSpot documents no
  `Retry-After`: the fake sends none unless asked (`retry_after=`).

How the drop is carried (drop field -> HubSpot; `MAPPING.md` has the JSON paths):

- ids: a drop id of digits (not starting with 0) is the HubSpot id, so billing's crm_account_id and
  deal_id still name the same records; users, pipelines and stages get stable integers
  (`fake.hubspot_id(entity, drop_id)`, `fake.drop_id(entity, hubspot_id)`).
- users -> owners: `firstName` / `lastName` (the full name split at its first space), `email`,
  `teams[0].name` (primary) = team, an inactive user is an archived owner; `createdAt` / `updatedAt`
  = its first / latest version.
- accounts -> companies: `name`, `domain`, `industry`, `country`, `numberofemployees`,
  `hubspot_owner_id`, `createdate`; the tax id in the custom property `tax_id` (another name: `custom_properties`).
- contacts: `firstname` / `lastname` (split as owners), `email`, `phone`, `jobtitle`,
  `associatedcompanyid`, `createdate`, `lastmodifieddate`.
- stages -> `/crm/v3/pipelines/deals`: one pipeline per drop pipeline (`label` = the drop's pipeline
  id), stages with `label`, `displayOrder`, `metadata.probability` (the drop's, as a string, also
  where it is no multiple of 0.1) and `metadata.isClosed` ("true" for stages mapped to closing,
  post_sale or lost).
- `GET /account-info/v3/details` (`portalId`, `timeZone`, `companyCurrency`, `additionalCurrencies`,
  `utcOffset`...): dev: api-reference account-info v3 "Retrieve account details"; the field list as a
  public mock server has it (github.com/damianh/hubspot, src/HubSpot.MockServer/Objects/AccountDetail.cs,
  [3p]). The company currency is the drop's most frequent deal currency, the others additional.
- deals: `dealname`, `amount`, `deal_currency_code` (with `single_currency=True`, as in a portal
  without multiple currencies, left empty on deals in the company currency), `pipeline`, `dealstage`,
  `hubspot_owner_id`,
  `createdate`, `closedate` (= closed_at; for an open deal its expected close date at midnight, as
  HubSpot uses it), `closed_lost_reason`; custom properties `expected_close_date` (a date) and
  `lead_source`. The company: association deal->company (5, and 341 "Primary").
- deal_stage_history -> `propertiesWithHistory.dealstage` of the deal (each entry, re-entries kept).
- deal_contacts -> associations deal->contact (3) with a USER_DEFINED label for the role
  (`Decision maker`, `Influencer`, `User`, `Other`; no label without a role).
- activities -> engagements: `call` -> calls, `email` -> emails, every other channel -> meetings
  with `hs_activity_type` (`Webinar`, `Social`, `Event`, `Other`; none for a plain meeting);
  occurred_at -> `hs_timestamp`, owner -> `hubspot_owner_id`; deal, company and contact as
  associations.
- `hs_lastmodifieddate` (contacts `lastmodifieddate`) = the version's updated_at; a deal's also
  moves with its contact links and stage entries. A deleted version archives the record
  (`archivedAt` = its updated_at); associations to archived records are gone.

What HubSpot cannot carry: deal_contacts' own updated_at (the deal's stands in); the canonical stage
(a seed maps it); an association to an archived record; a record restored after deletion.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from b2b_pipeline.sources.amocrm.fake import read_drop
from b2b_pipeline.sources.fake_server import LocalServer

OBJECT_TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-47": "meetings",
    "0-48": "calls",
    "0-49": "emails",
}
SINGULAR = {
    "companies": "company",
    "contacts": "contact",
    "deals": "deal",
    "calls": "call",
    "emails": "email",
    "meetings": "meeting",
}
OBJECTS = ("companies", "contacts", "deals", "calls", "emails", "meetings")
ENGAGEMENTS = ("calls", "emails", "meetings")
ENTITY_OF = {
    "companies": "accounts",
    "contacts": "contacts",
    "deals": "deals",
    "calls": "activities",
    "emails": "activities",
    "meetings": "activities",
}
LIST_MAX, LIST_DEFAULT, HISTORY_MAX = 100, 10, 50
SEARCH_MAX, SEARCH_DEFAULT, SEARCH_CAP, SEARCH_BODY_MAX = 200, 10, 10_000, 3_000
BATCH_MAX, ASSOC_BATCH_MAX, OWNERS_MAX = 100, 1_000, 500
ACCOUNT_ID = 24_681_357
APP_RATE, SEARCH_RATE = 10.0, 5.0  # requests a second: 100 in ten seconds (Free/Starter), search 5
_ID_BASE = {"users": 70_000_001, "pipelines": 7_100_001, "stages": 71_000_001, "teams": 400_001}
USER_ID_OFFSET = 10_000_000  # an owner's `userId` is its id plus this (HubSpot's two ids differ)
ROLE_LABELS = {
    "decision_maker": (101, "Decision maker"),
    "influencer": (102, "Influencer"),
    "user": (103, "User"),
    "other": (104, "Other"),
}
ACTIVITY_TYPES = {"webinar": "Webinar", "social": "Social", "event": "Event", "other": "Other"}
# HUBSPOT_DEFINED association type ids (see the module doc: the engagement ones are not verified)
ASSOC_TYPES = {
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("calls", "deals"): 206,
    ("calls", "companies"): 182,
    ("calls", "contacts"): 194,
    ("emails", "deals"): 210,
    ("emails", "companies"): 186,
    ("emails", "contacts"): 198,
    ("meetings", "deals"): 212,
    ("meetings", "companies"): 188,
    ("meetings", "contacts"): 200,
    # the other direction of each engagement's association (HubSpot's associations are bidirectional)
    ("deals", "calls"): 205,
    ("companies", "calls"): 181,
    ("contacts", "calls"): 193,
    ("deals", "emails"): 209,
    ("companies", "emails"): 185,
    ("contacts", "emails"): 197,
    ("deals", "meetings"): 211,
    ("companies", "meetings"): 187,
    ("contacts", "meetings"): 199,
}
PRIMARY_DEAL_COMPANY = 341
PORTAL_ID = 24_680_135  # the fake portal's Hub ID
OPERATORS = frozenset(
    {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"}
    | {"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
)
_ENGAGEMENT_PROPS = ("hs_timestamp", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id")
# the custom properties a portal defines for what HubSpot does not carry, by role: the portal's internal
# names (`FakeHubSpot(custom_properties=...)`; the connector's `HubSpotSettings.*_property`)
CUSTOM_PROPERTIES = {"tax_id": "tax_id", "lead_source": "lead_source", "expected_close_date": "expected_close_date"}
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
        "hs_object_id",
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
        "hs_object_id",
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
        "hs_object_id",
    ),
    "calls": (*_ENGAGEMENT_PROPS, "hs_call_title", "hs_call_direction", "hs_call_status"),
    "emails": (*_ENGAGEMENT_PROPS, "hs_email_subject", "hs_email_direction", "hs_email_status"),
    "meetings": (
        *_ENGAGEMENT_PROPS,
        "hs_meeting_title",
        "hs_meeting_outcome",
        "hs_meeting_start_time",
        "hs_activity_type",
    ),
}
LIST_DEFAULTS = {
    "companies": ("name", "domain"),
    "contacts": ("firstname", "lastname", "email"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
}
SEARCH_DEFAULTS = {
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("firstname", "lastname", "email", "lastmodifieddate", "hs_object_id", "createdate"),
    "deals": (
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ),
}
DATETIME_PROPS = frozenset(
    {"createdate", "hs_createdate", "hs_lastmodifieddate", "lastmodifieddate", "closedate", "hs_timestamp"}
    | {"hs_meeting_start_time"}
)
NUMBER_PROPS = frozenset({"hs_object_id", "amount", "numberofemployees", "associatedcompanyid", "hubspot_owner_id"})


def last_modified_property(object_type: str) -> str:
    """The property a search filters and sorts changes by: `lastmodifieddate` for contacts."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def created_property(object_type: str) -> str:
    return "hs_createdate" if object_type in ENGAGEMENTS else "createdate"


def _ms(text: str | None) -> int | None:
    """Epoch milliseconds of an ISO 8601 timestamp of the drop (no offset means UTC)."""
    if not text:
        return None
    dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """HubSpot's datetime text: ISO 8601 in UTC with milliseconds and `Z`."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _filter_ms(value: Any) -> int:
    """A datetime filter value: epoch milliseconds (HubSpot's form) or ISO 8601."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = _ms(text)
    if parsed is None:
        raise ValueError(f"not a date: {value!r}")
    return parsed


def _truthy(text: Any) -> bool:
    return str(text or "").strip().lower() in ("true", "1")


def _split_name(full: str | None) -> tuple[str | None, str | None]:
    """A full name as HubSpot's first and last name (split at the first space)."""
    if not full:
        return None, None
    first, _, last = full.partition(" ")
    return first or None, last or None


def _number(text: Any) -> str | None:
    return None if text in (None, "") else str(text).strip().replace(",", ".")


class HubSpotApiError(Exception):
    """An answer of the fake other than 200: its status and HubSpot's error body."""

    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.extra = status, category, extra

    def body(self, correlation_id: str) -> dict[str, Any]:
        return {
            "status": "error",
            "message": str(self),
            "correlationId": correlation_id,
            "category": self.category,
            **self.extra,
        }


@dataclass
class Fault:
    """A fault on the next `count` requests to `path` (after letting `after` through): "429"
    (ten-secondly limit), "500"/"502"/"503"/"504", or "drop" (the connection closes unanswered)."""

    path: str
    kind: str
    count: int = 1
    after: int = 0
    retry_after: int | None = None


class IdMap:
    """Stable drop id <-> HubSpot integer id, per entity."""

    def __init__(self) -> None:
        self._to: dict[tuple[str, str], int] = {}
        self._from: dict[tuple[str, int], str] = {}
        self._next: dict[str, int] = {}

    def get(self, entity: str, drop_id: Any) -> int:
        key = (entity, str(drop_id))
        if key not in self._to:
            text = str(drop_id)
            if text.isdigit() and not text.startswith("0") and (entity, int(text)) not in self._from:
                value = int(text)
            else:
                value = self._next.get(entity, _ID_BASE.get(entity, 90_000_001))
                while (entity, value) in self._from:
                    value += 1
                self._next[entity] = value + 1
            self._to[key] = value
            self._from.setdefault((entity, value), text)
        return self._to[key]

    def back(self, entity: str, value: int) -> str:
        return self._from[(entity, int(value))]


KEYS = {
    "users": "user_id",
    "accounts": "account_id",
    "contacts": "contact_id",
    "stages": "stage_id",
    "deals": "deal_id",
    "activities": "activity_id",
}
ENTITIES = (*KEYS, "deal_contacts")


def _key(entity: str, row: Mapping[str, Any]) -> Any:
    if entity == "deal_contacts":
        return (str(row["deal_id"]), str(row["contact_id"]))
    return str(row[KEYS[entity]])


def object_of_activity(row: Mapping[str, Any]) -> str:
    """The engagement object an activity of the drop is: calls, emails or meetings."""
    return {"call": "calls", "email": "emails"}.get(str(row.get("channel")), "meetings")


class Store:
    """The drop's record versions and the fake's clock (epoch ms); renders HubSpot records as of now."""

    def __init__(
        self,
        drop_dir: Path,
        now: int | None,
        custom_properties: Mapping[str, str] | None = None,
        single_currency: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.names = {**CUSTOM_PROPERTIES, **(custom_properties or {})}
        self.single_currency = single_currency
        self.ids = IdMap()
        self.versions: dict[str, dict[Any, list[dict[str, Any]]]] = {e: {} for e in ENTITIES}
        self.history: dict[str, list[tuple[int, str]]] = {}
        self.index_delay: dict[tuple[str, int], int] = {}  # (object, id) -> ms the search index lags
        self.revision = 0
        latest = 0
        rows = read_drop(drop_dir)
        for entity in ENTITIES:
            for row in rows[entity]:
                self._add(entity, row)
                latest = max(latest, row["_t"])
        for row in rows["deal_stage_history"]:
            t = _ms(row["entered_at"]) or 0
            self.history.setdefault(str(row["deal_id"]), []).append((t, str(row["stage_id"])))
            latest = max(latest, t)
        for entries in self.history.values():
            entries.sort()
        for entity in KEYS:  # stable ids: sorted drop ids
            for key in sorted(self.versions[entity]):
                self.ids.get(entity, key)
        for key in sorted({s[-1]["pipeline_id"] for s in self.versions["stages"].values()}):
            self.ids.get("pipelines", key)
        self.now = now if now is not None else latest
        self._cache: tuple[tuple[int, int], dict[str, Any]] | None = None
        counts = Counter(
            (v.get("currency") or "").strip().upper() for vs in self.versions["deals"].values() for v in vs
        )
        counts.pop("", None)
        ranked = [code for code, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
        self.company_currency = ranked[0] if ranked else "USD"
        self.additional_currencies = sorted(ranked[1:])

    def account_details(self) -> dict[str, Any]:
        """`GET /account-info/v3/details`."""
        return {
            "portalId": PORTAL_ID,
            "accountType": "STANDARD",
            "timeZone": "Etc/UTC",
            "companyCurrency": self.company_currency,
            "additionalCurrencies": [] if self.single_currency else self.additional_currencies,
            "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }

    def _deal_currency(self, d: Mapping[str, Any]) -> str | None:
        """A deal's `deal_currency_code`: empty in a single-currency portal for the company currency."""
        code = (d.get("currency") or "").strip().upper() or None
        return None if self.single_currency and code == self.company_currency else code

    def _add(self, entity: str, row: dict[str, Any]) -> None:
        row["_t"] = _ms(row.get("updated_at")) or 0
        versions = self.versions[entity].setdefault(_key(entity, row), [])
        versions.append(row)
        if len(versions) > 1 and versions[-2]["_t"] > row["_t"]:
            versions.sort(key=lambda r: r["_t"])  # stable: a later file wins a tie

    def current(self, entity: str) -> dict[Any, dict[str, Any]]:
        """The latest version of each record with updated_at <= now (deleted ones included)."""
        out = {}
        for key, versions in self.versions[entity].items():
            if versions[0]["_t"] > self.now:
                continue
            for v in reversed(versions):
                if v["_t"] <= self.now:
                    out[key] = v
                    break
        return out

    def view(self) -> dict[str, Any]:
        """Every object, association, owner and pipeline as of now (cached until the clock or the records change)."""
        with self.lock:
            stamp = (self.now, self.revision)
            if self._cache is None or self._cache[0] != stamp:
                self._cache = (stamp, self._render())
            return self._cache[1]

    # -- rendering ---------------------------------------------------------------------------------

    def _render(self) -> dict[str, Any]:
        cur = {e: self.current(e) for e in ENTITIES}
        live = {e: {k: r for k, r in rows.items() if not _truthy(r.get("is_deleted"))} for e, rows in cur.items()}
        links: dict[str, list[dict[str, Any]]] = {}
        for (deal_id, _), link in sorted(live["deal_contacts"].items()):
            links.setdefault(deal_id, []).append(link)
        objects: dict[str, dict[int, dict[str, Any]]] = {o: {} for o in OBJECTS}
        archived: dict[str, dict[int, dict[str, Any]]] = {o: {} for o in OBJECTS}
        for key, row in cur["accounts"].items():
            self._place(objects, archived, "companies", self._company(key, row), row)
        for key, row in cur["contacts"].items():
            self._place(objects, archived, "contacts", self._contact(key, row), row)
        for key, row in cur["deals"].items():
            self._place(objects, archived, "deals", self._deal(key, row, links.get(key, [])), row)
        for key, row in cur["activities"].items():
            self._place(objects, archived, object_of_activity(row), self._engagement(key, row), row)
        return {
            "objects": objects,
            "archived": archived,
            "associations": self._associations(live, objects, links),
            "owners": [self._owner(key, row) for key, row in sorted(cur["users"].items())],
            "pipelines": self._pipelines(live["stages"]),
        }

    def _versions_of(self, entity: str, key: Any) -> list[dict[str, Any]]:
        return [v for v in self.versions[entity][key] if v["_t"] <= self.now]

    def _place(self, objects: dict, archived: dict, obj: str, record: dict[str, Any], row: Mapping[str, Any]) -> None:
        hs_id = int(record["id"])
        if _truthy(row.get("is_deleted")):
            at = iso(row["_t"])
            archived[obj][hs_id] = {**record, "updatedAt": at, "archived": True, "archivedAt": at}
        else:
            objects[obj][hs_id] = record

    def _record(self, hs_id: int, properties: dict[str, Any], created: int | None, modified: int) -> dict[str, Any]:
        return {
            "id": str(hs_id),
            "properties": properties,
            "createdAt": iso(created),
            "updatedAt": iso(modified),
            "archived": False,
        }

    def _owner_id(self, drop_user: Any) -> str | None:
        return str(self.ids.get("users", drop_user)) if drop_user else None

    def _company(self, key: str, a: Mapping[str, Any]) -> dict[str, Any]:
        hs_id = self.ids.get("accounts", key)
        created = _ms(a.get("created_at")) or self._versions_of("accounts", key)[0]["_t"]
        props = {
            "name": a.get("name"),
            "domain": a.get("domain"),
            "industry": a.get("industry"),
            "country": a.get("country"),
            "numberofemployees": _number(a.get("employee_count")),
            self.names["tax_id"]: a.get("tax_id"),
            "hubspot_owner_id": self._owner_id(a.get("owner_id")),
            "createdate": iso(created),
            "hs_lastmodifieddate": iso(a["_t"]),
            "hs_object_id": str(hs_id),
        }
        return self._record(hs_id, props, created, a["_t"])

    def _contact(self, key: str, c: Mapping[str, Any]) -> dict[str, Any]:
        hs_id = self.ids.get("contacts", key)
        first, last = _split_name(c.get("full_name"))
        created = _ms(c.get("created_at")) or self._versions_of("contacts", key)[0]["_t"]
        props = {
            "firstname": first,
            "lastname": last,
            "email": c.get("email"),
            "phone": c.get("phone"),
            "jobtitle": c.get("job_title"),
            "associatedcompanyid": str(self.ids.get("accounts", c["account_id"])) if c.get("account_id") else None,
            "hubspot_owner_id": None,
            "createdate": iso(created),
            "lastmodifieddate": iso(c["_t"]),
            "hs_object_id": str(hs_id),
        }
        return self._record(hs_id, props, created, c["_t"])

    def stage_history(self, key: str) -> list[tuple[int, str]]:
        """The deal's stage entries up to now, oldest first: (ms, drop stage id)."""
        return [h for h in self.history.get(key, []) if h[0] <= self.now]

    def _deal(self, key: str, d: Mapping[str, Any], links: list[Mapping[str, Any]]) -> dict[str, Any]:
        hs_id = self.ids.get("deals", key)
        history = self.stage_history(key)
        modified = max([d["_t"], *(link["_t"] for link in links), *(t for t, _ in history)])
        created = _ms(d.get("created_at")) or self._versions_of("deals", key)[0]["_t"]
        expected = d.get("expected_close_date")
        closed = _ms(d.get("closed_at"))
        if closed is None and expected:
            closed = _ms(f"{expected}T00:00:00Z")
        props = {
            "dealname": d.get("deal_name"),
            "amount": _number(d.get("amount")),
            "deal_currency_code": self._deal_currency(d),
            "pipeline": str(self.ids.get("pipelines", d["pipeline_id"])) if d.get("pipeline_id") else None,
            "dealstage": str(self.ids.get("stages", d["stage_id"])),
            "closedate": iso(closed),
            "closed_lost_reason": d.get("lost_reason"),
            self.names["expected_close_date"]: expected,
            self.names["lead_source"]: d.get("lead_source"),
            "hubspot_owner_id": self._owner_id(d.get("owner_id")),
            "createdate": iso(created),
            "hs_lastmodifieddate": iso(modified),
            "hs_object_id": str(hs_id),
        }
        record = self._record(hs_id, props, created, modified)
        record["_history"] = history or [(created, str(d["stage_id"]))]
        record["_owner"] = self._owner_id(d.get("owner_id"))
        return record

    def _engagement(self, key: str, a: Mapping[str, Any]) -> dict[str, Any]:
        hs_id = self.ids.get("activities", key)
        created = self._versions_of("activities", key)[0]["_t"]
        occurred = _ms(a.get("occurred_at"))
        channel = str(a.get("channel") or "other")
        props = {
            "hs_timestamp": iso(occurred),
            "hubspot_owner_id": self._owner_id(a.get("owner_id")),
            "hs_createdate": iso(created),
            "hs_lastmodifieddate": iso(a["_t"]),
            "hs_object_id": str(hs_id),
        }
        obj = object_of_activity(a)
        if obj == "calls":
            props |= {"hs_call_title": "Call", "hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"}
        elif obj == "emails":
            props |= {"hs_email_subject": "Email", "hs_email_direction": "EMAIL", "hs_email_status": "SENT"}
        else:
            props |= {
                "hs_meeting_title": channel.capitalize(),
                "hs_meeting_outcome": "COMPLETED",
                "hs_meeting_start_time": iso(occurred),
                "hs_activity_type": ACTIVITY_TYPES.get(channel),
            }
        record = self._record(hs_id, props, created, a["_t"])
        record["_links"] = {
            "deals": a.get("deal_id"),
            "companies": a.get("account_id"),
            "contacts": a.get("contact_id"),
        }
        return record

    def _associations(
        self, live: Mapping[str, Mapping[Any, Any]], objects: Mapping[str, Mapping[int, Any]], links: Mapping[str, list]
    ) -> dict[tuple[str, str], dict[int, list[dict[str, Any]]]]:
        """(from, to) -> from id -> the `to` entries of a v4 batch read, between live records only."""
        out: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {pair: {} for pair in ASSOC_TYPES}

        def link(src: str, src_id: int, dst: str, dst_id: int, labels: Iterable[tuple[str, int, str | None]]) -> None:
            if src_id not in objects[src] or dst_id not in objects[dst]:
                return
            types = [{"category": c, "typeId": t, "label": label} for c, t, label in labels]
            out[(src, dst)].setdefault(src_id, []).append({"toObjectId": dst_id, "associationTypes": types})

        def both(src: str, src_id: int, dst: str, dst_id: int, extra: list[tuple[str, int, str | None]]) -> None:
            link(src, src_id, dst, dst_id, [("HUBSPOT_DEFINED", ASSOC_TYPES[(src, dst)], None), *extra])
            link(dst, dst_id, src, src_id, [("HUBSPOT_DEFINED", ASSOC_TYPES[(dst, src)], None), *extra])

        for key, d in live["deals"].items():
            deal = self.ids.get("deals", key)
            if d.get("account_id"):
                company = self.ids.get("accounts", d["account_id"])
                link(
                    "deals",
                    deal,
                    "companies",
                    company,
                    [("HUBSPOT_DEFINED", PRIMARY_DEAL_COMPANY, "Primary"), ("HUBSPOT_DEFINED", 5, None)],
                )
                link("companies", company, "deals", deal, [("HUBSPOT_DEFINED", 6, None)])
            for c in links.get(key, []):
                role = ROLE_LABELS.get(str(c.get("role") or ""))
                extra = [("USER_DEFINED", role[0], role[1])] if role else []
                both("deals", deal, "contacts", self.ids.get("contacts", c["contact_id"]), extra)
        for key, c in live["contacts"].items():
            if c.get("account_id"):
                both(
                    "contacts",
                    self.ids.get("contacts", key),
                    "companies",
                    self.ids.get("accounts", c["account_id"]),
                    [],
                )
        for obj in ENGAGEMENTS:
            for hs_id, record in objects[obj].items():
                for dst, entity in (("deals", "deals"), ("companies", "accounts"), ("contacts", "contacts")):
                    drop_id = record["_links"][dst]
                    if drop_id:
                        both(obj, hs_id, dst, self.ids.get(entity, drop_id), [])
        for pairs in out.values():
            for entries in pairs.values():
                entries.sort(key=lambda e: e["toObjectId"])
        return out

    def _owner(self, key: str, u: Mapping[str, Any]) -> dict[str, Any]:
        hs_id = self.ids.get("users", key)
        first, last = _split_name(u.get("full_name"))
        teams = []
        if u.get("team"):
            teams.append({"id": str(self._team_id(u["team"])), "name": u["team"], "primary": True})
        return {
            "id": str(hs_id),
            "email": u.get("email"),
            "type": "PERSON",
            "firstName": first or "",
            "lastName": last or "",
            "userId": hs_id + USER_ID_OFFSET,
            "userIdIncludingInactive": hs_id + USER_ID_OFFSET,
            "createdAt": iso(self._versions_of("users", key)[0]["_t"]),
            "updatedAt": iso(u["_t"]),
            "archived": not _truthy(u.get("is_active")) or _truthy(u.get("is_deleted")),
            "teams": teams,
        }

    def _team_id(self, team: str) -> int:
        return self.ids.get("teams", team)

    def _pipelines(self, stages: Mapping[Any, Mapping[str, Any]]) -> list[dict[str, Any]]:
        by_pipeline: dict[str, list[Mapping[str, Any]]] = {}
        for s in stages.values():
            by_pipeline.setdefault(s["pipeline_id"], []).append(s)
        out = []
        for order, pipeline in enumerate(sorted(by_pipeline, key=lambda p: self.ids.get("pipelines", p))):
            rows = sorted(by_pipeline[pipeline], key=lambda s: (int(s["display_order"]), s["stage_name"]))
            stage_items = []
            for s in rows:
                created = self._versions_of("stages", s["stage_id"])[0]["_t"]
                closed = s["canonical_stage"] in ("closing", "post_sale", "lost")
                stage_items.append(
                    {
                        "id": str(self.ids.get("stages", s["stage_id"])),
                        "label": s["stage_name"],
                        "displayOrder": int(s["display_order"]),
                        "metadata": {
                            "isClosed": "true" if closed else "false",
                            "probability": _number(s["probability"]),
                        },
                        "createdAt": iso(created),
                        "updatedAt": iso(s["_t"]),
                        "archived": False,
                    }
                )
            out.append(
                {
                    "id": str(self.ids.get("pipelines", pipeline)),
                    "label": pipeline,
                    "displayOrder": order,
                    "createdAt": min(s["createdAt"] for s in stage_items),
                    "updatedAt": max(s["updatedAt"] for s in stage_items),
                    "archived": False,
                    "stages": stage_items,
                }
            )
        return out

    # -- changes -----------------------------------------------------------------------------------

    def change(self, entity: str, key: Any, changes: Mapping[str, Any], *, delete: bool = False) -> int:
        """A new version of a record (or a new record) at the clock's now; a deal's new stage is also
        an entry into that stage."""
        with self.lock:
            if entity not in ENTITIES:
                raise ValueError(f"unknown entity {entity!r}")
            key = tuple(str(k) for k in key) if entity == "deal_contacts" else str(key)
            versions = self.versions[entity].get(key)
            base = {k: v for k, v in versions[-1].items() if k != "_t"} if versions else {}
            row = {**base, **{k: (None if v is None else str(v)) for k, v in changes.items()}}
            if entity == "deal_contacts":
                row["deal_id"], row["contact_id"] = key
            else:
                row[KEYS[entity]] = key
            row["updated_at"] = iso(self.now)
            row["is_deleted"] = "true" if delete else "false"
            self._add(entity, row)
            if entity == "deals" and row.get("stage_id") and base.get("stage_id") != row["stage_id"]:
                self.history.setdefault(key, []).append((self.now, str(row["stage_id"])))
                self.history[key].sort()
            self.revision += 1
            if entity == "deal_contacts":
                return self.ids.get("deals", key[0])
            return self.ids.get(entity, key)

    def add_companies(self, n: int, *, prefix: int = 900_000_000) -> list[int]:
        """`n` new companies, all changed at the clock's now (one `hs_lastmodifieddate`)."""
        with self.lock:
            stamp = iso(self.now)
            ids = []
            for i in range(n):
                key = str(prefix + i)
                row = {
                    "account_id": key,
                    "name": f"Bulk {key}",
                    "created_at": stamp,
                    "updated_at": stamp,
                    "is_deleted": "false",
                }
                self._add("accounts", row)
                ids.append(self.ids.get("accounts", key))
            self.revision += 1
            return ids


def _order_hash(hs_id: int) -> str:
    """Ties of a search's sort come back in no documented order: a stable shuffle."""
    return hashlib.sha1(str(hs_id).encode()).hexdigest()


class Search:
    """A search request over a list of records: validation, filters, the sort, paging by offset."""

    def __init__(self, object_type: str, body: Mapping[str, Any]) -> None:
        self.object_type = object_type
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
            raise HubSpotApiError(
                400, "There was a problem with the request: at most 5 filterGroups of at most 6 filters each."
            )
        if sum(len(g.get("filters") or []) for g in groups) > 18:
            raise HubSpotApiError(400, "There was a problem with the request: at most 18 filters in all.")
        for g in groups:
            for f in g.get("filters") or []:
                if f.get("operator") not in OPERATORS:
                    raise HubSpotApiError(400, f"Invalid operator {f.get('operator')!r}.")
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            raise HubSpotApiError(400, "Only one sorting rule can be applied to any search.")
        self.groups, self.sort = groups, (sorts[0] if sorts else None)
        try:
            self.limit = min(int(body.get("limit") or SEARCH_DEFAULT), SEARCH_MAX)
            self.after = int(body.get("after") or 0)
        except (TypeError, ValueError) as exc:
            raise HubSpotApiError(400, "limit and after must be integers.") from exc
        if self.after + min(self.limit, 1) > SEARCH_CAP:
            raise HubSpotApiError(
                400,
                "The search endpoints are limited to 10,000 total results for any given query.",
                subCategory="SEARCH_LIMIT",
            )
        self.properties = body.get("properties")

    @staticmethod
    def _value(record: Mapping[str, Any], name: str) -> Any:
        return record["properties"].get(name)

    def _compare(self, name: str, value: Any, wanted: Any) -> tuple[Any, Any]:
        if name in DATETIME_PROPS:
            return _filter_ms(value) if value is not None else None, _filter_ms(wanted)
        if name in NUMBER_PROPS:
            return float(value) if value is not None else None, float(wanted)
        return (str(value).lower() if value is not None else None), str(wanted).lower()

    def _matches(self, record: Mapping[str, Any], f: Mapping[str, Any]) -> bool:
        name, op = f.get("propertyName"), f["operator"]
        value = self._value(record, name)
        if op == "HAS_PROPERTY":
            return value is not None
        if op == "NOT_HAS_PROPERTY":
            return value is None
        if op in ("IN", "NOT_IN"):
            inside = any(
                self._compare(name, value, w)[0] == self._compare(name, value, w)[1]
                for w in f.get("values") or []
                if value is not None
            )
            return inside if op == "IN" else not inside
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            found = value is not None and str(f.get("value", "")).lower().strip("*") in str(value).lower()
            return found if op == "CONTAINS_TOKEN" else not found
        if value is None:
            return op == "NEQ"
        have, want = self._compare(name, value, f.get("value"))
        if op == "BETWEEN":
            return want <= have <= self._compare(name, value, f.get("highValue"))[1]
        return {
            "EQ": have == want,
            "NEQ": have != want,
            "LT": have < want,
            "LTE": have <= want,
            "GT": have > want,
            "GTE": have >= want,
        }[op]

    def run(self, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        hits = [
            r
            for r in records
            if not self.groups or any(all(self._matches(r, f) for f in g.get("filters") or []) for g in self.groups)
        ]
        if self.sort:
            name = self.sort.get("propertyName")
            descending = str(self.sort.get("direction", "ASCENDING")).upper().startswith("DESC")

            def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
                v = self._value(r, name)
                if v is None:
                    return (1, 0, _order_hash(int(r["id"])))
                number = _filter_ms(v) if name in DATETIME_PROPS else float(v) if name in NUMBER_PROPS else str(v)
                return (0, number, _order_hash(int(r["id"])))

            hits.sort(key=key, reverse=descending)
        else:
            hits.sort(key=lambda r: int(r["id"]))  # creation order, oldest first
        end = min(self.after + self.limit, SEARCH_CAP)
        page = hits[self.after : end]
        body: dict[str, Any] = {
            "total": len(hits),
            "results": [render_properties(self.object_type, r, self.properties, SEARCH_DEFAULTS) for r in page],
        }
        if len(hits) > end:
            body["paging"] = {"next": {"after": str(end)}}
        return body


def render_properties(
    object_type: str,
    record: Mapping[str, Any],
    wanted: list[str] | None,
    defaults: Mapping[str, tuple[str, ...]],
    with_history: list[str] | None = None,
) -> dict[str, Any]:
    """The record as an answer: the requested properties that exist (null without a value), else the
    defaults; createdate, the last-modified property and hs_object_id always."""
    props = record["properties"]
    defined = {*PROPERTIES[object_type], *props}  # the portal's properties, its custom ones included
    always = (created_property(object_type), last_modified_property(object_type), "hs_object_id")
    names = [n for n in wanted if n in defined] if wanted else list(defaults.get(object_type, ()))
    out: dict[str, Any] = {"id": record["id"]}
    out["properties"] = {n: props.get(n) for n in dict.fromkeys([*names, *always])}
    if with_history:
        out["propertiesWithHistory"] = {n: _history(object_type, record, n) for n in with_history if n in defined}
    for k in ("createdAt", "updatedAt", "archived", "archivedAt"):
        if k in record:
            out[k] = record[k]
    return out


def _history(object_type: str, record: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """`ValueWithTimestamp`s of a property, newest first: every entry of a deal's stage; the current
    value of any other property."""
    if object_type == "deals" and name == "dealstage":
        source = {"sourceType": "CRM_UI"}
        owner = record.get("_owner")
        if owner:
            source |= {
                "sourceId": f"userId:{int(owner) + USER_ID_OFFSET}",
                "updatedByUserId": int(owner) + USER_ID_OFFSET,
            }
        return [{"value": stage, "timestamp": iso(t), **source} for t, stage in reversed(record["_stage_ids"])]
    value = record["properties"].get(name)
    if value is None:
        return []
    return [{"value": value, "timestamp": record["updatedAt"], "sourceType": "API"}]


def _encode_after(value: int) -> str:
    return base64.urlsafe_b64encode(f"{value}".encode()).decode().rstrip("=")


def _decode_after(text: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())
    except ValueError as exc:
        raise HubSpotApiError(400, f"Invalid after cursor {text!r}.") from exc


class FakeHubSpot(LocalServer):
    """The fake HubSpot server. Use as a context manager, or `start()`/`stop()`.

    `requests_per_second` * 10 is the ten-second app limit (HubSpot Free/Starter: 100 in ten
    seconds); `search_requests_per_second` the search limit (HubSpot's 5 a second; by default, a
    fake sped up past the documented app rate, for the demo or a test not about rates, speeds its
    search up alike: `requests_per_second`); `daily_limit` the day's. `custom_properties`: the internal
    names of the portal's custom properties by role (`CUSTOM_PROPERTIES`: tax_id, lead_source,
    expected_close_date), which portals name as they like. `single_currency`: a portal without multiple
    currencies (deals in the company currency carry no `deal_currency_code`)."""

    def __init__(
        self,
        drop_dir: Path,
        *,
        token: str,
        now: datetime | None = None,
        requests_per_second: float = APP_RATE,
        search_requests_per_second: float | None = None,
        daily_limit: int = 250_000,
        association_page_size: int = 500,
        custom_properties: Mapping[str, str] | None = None,
        single_currency: bool = False,
    ) -> None:
        self.token = token
        self.requests_per_second = requests_per_second
        if search_requests_per_second is None:
            search_requests_per_second = SEARCH_RATE if requests_per_second <= APP_RATE else requests_per_second
        self.search_requests_per_second = search_requests_per_second
        self.daily_limit = daily_limit
        self.association_page_size = association_page_size
        self.store = Store(
            Path(drop_dir), int(now.timestamp() * 1000) if now else None, custom_properties, single_currency
        )
        self.faults: list[Fault] = []
        self.missing_scopes: set[str] = set()  # object types whose scope the token lacks (403)
        self.requests: list[tuple[str, Any, int]] = []  # (method path, query or body, status) of API calls
        self._hooks: list[list[Any]] = []
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._daily = 0
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeHubSpot:
        return self.serve_methods("fake-hubspot")

    # -- test helpers -----------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.store.now / 1000, UTC)

    def set_clock(self, moment: datetime) -> None:
        with self.store.lock:
            self.store.now = round(moment.timestamp() * 1000)

    def hubspot_id(self, entity: str, drop_id: Any) -> int:
        """The HubSpot id serving a drop record (users: the owner id; pipelines, stages, accounts,
        contacts, deals, activities)."""
        return self.store.ids.get(entity, drop_id)

    def drop_id(self, entity: str, hubspot_id: Any) -> str | None:
        return None if hubspot_id is None else self.store.ids.back(entity, int(hubspot_id))

    def objects(self, object_type: str, *, archived: bool = False) -> dict[int, dict[str, Any]]:
        """The records of an object type as of now (live, or archived)."""
        return self.store.view()["archived" if archived else "objects"][object_type]

    def change_record(
        self, entity: str, drop_id: Any, changes: Mapping[str, Any] | None = None, *, delete: bool = False
    ) -> int:
        """A new version of a drop record at the clock's now (entity: users, accounts, contacts,
        stages, deals, deal_contacts, activities); `delete` archives it."""
        return self.store.change(entity, drop_id, changes or {}, delete=delete)

    def archive(self, entity: str, drop_id: Any) -> int:
        return self.change_record(entity, drop_id, delete=True)

    def add_companies(self, n: int) -> list[int]:
        """`n` new companies sharing one `hs_lastmodifieddate` (the clock's now)."""
        return self.store.add_companies(n)

    def delay_indexing(self, object_type: str, hubspot_id: int, seconds: float) -> None:
        """The search index sees the record only `seconds` after its last change (eventual consistency)."""
        with self.store.lock:
            self.store.index_delay[(object_type, int(hubspot_id))] = int(seconds * 1000)

    def inject_fault(self, path: str, kind: str, **kwargs: Any) -> None:
        with self._lock:
            self.faults.append(Fault(path, kind, **kwargs))

    def on_request(self, path: str, n: int, callback: Callable[[FakeHubSpot], None]) -> None:
        """Run `callback(fake)` once, right after the `n`-th answered (200/207) request of `path` was
        computed and before it is sent."""
        with self._lock:
            self._hooks.append([path, n, callback, 0])

    def request_count(self, path: str | None = None) -> int:
        return sum(1 for p, _, _ in self.requests if path is None or p.split(" ", 1)[1] == path)

    # -- HTTP -------------------------------------------------------------------------------------

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        h.answered = status  # type: ignore[attr-defined]
        h.send_response(status)
        h.send_header("Content-Type", "application/json;charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query, keep_blank_values=True)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        correlation = str(uuid.uuid4())
        if url.path.startswith("/_admin/"):
            return self._admin(h, method, url.path, raw)
        logged: Any = query
        try:
            body = json.loads(raw) if raw else {}
            logged = body if method == "POST" else query
            self._api(h, method, url.path, query, body, correlation)
        except json.JSONDecodeError as exc:
            error = HubSpotApiError(400, f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}")
            self._send(h, 400, error.body(correlation), {"X-HubSpot-Correlation-Id": correlation})
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self.requests.append((f"{method} {url.path}", logged, getattr(h, "answered", 0)))

    def _admin(self, h: BaseHTTPRequestHandler, method: str, path: str, raw: bytes) -> None:
        """Test and demo calls over HTTP (no auth, not counted): POST /_admin/clock {"now": ISO} or
        {"advance_seconds": n}; POST /_admin/records {"entity", "id", "set", "delete"}; POST
        /_admin/fault {"path", "kind", ...}; GET /_admin/requests."""
        try:
            body = json.loads(raw) if raw else {}
            if path == "/_admin/clock":
                if method == "POST" and "now" in body:
                    self.set_clock(datetime.fromisoformat(body["now"]))
                elif method == "POST" and "advance_seconds" in body:
                    self.set_clock(datetime.fromtimestamp(self.store.now / 1000 + float(body["advance_seconds"]), UTC))
                return self._send(h, 200, {"now": iso(self.store.now)})
            if path == "/_admin/records" and method == "POST":
                hs_id = self.change_record(
                    body["entity"], body["id"], body.get("set") or {}, delete=bool(body.get("delete"))
                )
                return self._send(h, 200, {"id": str(hs_id), "updatedAt": iso(self.store.now)})
            if path == "/_admin/fault" and method == "POST":
                self.inject_fault(body.pop("path"), str(body.pop("kind")), **body)
                return self._send(h, 200, {"faults": len(self.faults)})
            if path == "/_admin/requests" and method == "GET":
                return self._send(h, 200, {"requests": [[p, q, status] for p, q, status in self.requests]})
            raise HubSpotApiError(404, f"No admin route for {method} {path}.", "OBJECT_NOT_FOUND")
        except HubSpotApiError as error:
            return self._send(h, error.status, error.body(str(uuid.uuid4())))
        except (KeyError, TypeError, ValueError) as exc:
            return self._send(h, 400, HubSpotApiError(400, f"bad admin call: {exc}").body(str(uuid.uuid4())))

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

    def _rate_limited(self, search: bool) -> str | None:
        """The policy a request breaks, if any: TEN_SECONDLY_ROLLING, SECONDLY (search) or DAILY."""
        with self._lock:
            t = time.monotonic()
            self._daily += 1
            if self._daily > self.daily_limit:
                return "DAILY"
            window, span, allowed = (
                (self._search_window, 1.0, self.search_requests_per_second)
                if search
                else (self._window, 10.0, self.requests_per_second * 10)
            )
            while window and t - window[0] >= span:
                window.popleft()
            if len(window) >= allowed:
                return "SECONDLY" if search else "TEN_SECONDLY_ROLLING"
            window.append(t)
            return None

    def _limit_headers(self, correlation: str) -> dict[str, str]:
        with self._lock:
            used = len(self._window)
        allowed = int(self.requests_per_second * 10)
        return {
            "X-HubSpot-Correlation-Id": correlation,
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(allowed),
            "X-HubSpot-RateLimit-Remaining": str(max(0, allowed - used)),
        }

    def _rate_answer(
        self, policy: str, correlation: str, retry_after: int | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        message = {
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
            "SECONDLY": "You have reached your secondly limit.",
            "DAILY": "You have reached your daily limit.",
        }[policy]
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation,
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        headers = {"X-HubSpot-Correlation-Id": correlation}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return body, headers

    def _api(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        body: Any,
        correlation: str,
    ) -> None:
        search = path.endswith("/search")
        fault = self._take_fault(path)
        if fault is not None:
            if fault.kind == "drop":
                h.answered = 0  # type: ignore[attr-defined]
                h.close_connection = True
                h.connection.shutdown(2)  # type: ignore[attr-defined]
                return
            if fault.kind == "429":
                answer, headers = self._rate_answer("TEN_SECONDLY_ROLLING", correlation, fault.retry_after)
                return self._send(h, 429, answer, headers)
            status = int(fault.kind)
            error = HubSpotApiError(status, "internal error", "INTERNAL_ERROR")
            return self._send(h, status, error.body(correlation), {"X-HubSpot-Correlation-Id": correlation})
        if h.headers.get("Authorization", "") != f"Bearer {self.token}":
            error = HubSpotApiError(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
            return self._send(h, 401, error.body(correlation), {"X-HubSpot-Correlation-Id": correlation})
        policy = self._rate_limited(search)
        if policy is not None:
            answer, headers = self._rate_answer(policy, correlation)
            return self._send(h, 429, answer, headers)
        headers = {"X-HubSpot-Correlation-Id": correlation} if search else self._limit_headers(correlation)
        try:
            status, answer = self._route(method, path, query, body)
        except HubSpotApiError as error:
            status, answer = error.status, error.body(correlation)
        if status in (200, 207):
            self._run_hooks(path)
        self._send(h, status, answer, headers)

    def _run_hooks(self, path: str) -> None:
        due = []
        with self._lock:
            for hook in self._hooks:
                if hook[0] == path:
                    hook[3] += 1
                    if hook[3] == hook[1]:
                        due.append(hook[2])
        for callback in due:
            callback(self)

    def _object_type(self, name: str) -> str:
        object_type = OBJECT_TYPE_IDS.get(name, name)
        if object_type not in OBJECTS:
            raise HubSpotApiError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
        if object_type in self.missing_scopes:
            raise HubSpotApiError(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
                "here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredScopes": [f"crm.objects.{object_type}.read"]},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            )
        return object_type

    def _route(self, method: str, path: str, query: Mapping[str, list[str]], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts[:3] == ["crm", "v3", "owners"] and len(parts) == 3:
            return 200, self._owners(query)
        if method == "GET" and parts == ["crm", "v3", "pipelines", "deals"]:
            return 200, {"results": self.store.view()["pipelines"]}
        if method == "GET" and parts == ["account-info", "v3", "details"]:
            return 200, self.store.account_details()
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4:
            object_type = self._object_type(parts[3])
            rest = parts[4:]
            if method == "GET" and not rest:
                return 200, self._list(object_type, query)
            if method == "POST" and rest == ["search"]:
                return 200, self._search(object_type, body)
            if method == "POST" and rest == ["batch", "read"]:
                return self._batch_read(object_type, body)
        if method == "POST" and parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"]:
            return self._associations(self._object_type(parts[3]), self._object_type(parts[4]), body)
        raise HubSpotApiError(404, f"No route for {method} {path}.", "OBJECT_NOT_FOUND")

    @staticmethod
    def _csv(query: Mapping[str, list[str]], name: str) -> list[str] | None:
        values = [v for value in query.get(name, []) for v in value.split(",") if v]
        return values or None

    def _list(self, object_type: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        archived = str(query.get("archived", ["false"])[0]).lower() == "true"
        history = self._csv(query, "propertiesWithHistory")
        try:
            limit = int(query.get("limit", [str(LIST_DEFAULT)])[0])
        except ValueError as exc:
            raise HubSpotApiError(400, "limit must be an integer.") from exc
        if history and limit > HISTORY_MAX:
            raise HubSpotApiError(400, f"limit may not exceed {HISTORY_MAX} when propertiesWithHistory is requested.")
        limit = max(1, min(limit, LIST_MAX))
        records = self.objects(object_type, archived=archived)
        start = _decode_after(query["after"][0]) if query.get("after") else 0
        ids = sorted(i for i in records if i >= start)
        page = ids[:limit]
        wanted = self._csv(query, "properties")
        results = []
        for hs_id in page:
            item = render_properties(
                object_type, self._with_history(object_type, records[hs_id]), wanted, LIST_DEFAULTS, history
            )
            for other in self._csv(query, "associations") or []:
                entries = (
                    self.store.view()["associations"]
                    .get((object_type, OBJECT_TYPE_IDS.get(other, other)), {})
                    .get(hs_id)
                )
                if entries:
                    item.setdefault("associations", {})[other] = {
                        "results": [
                            {
                                "id": str(e["toObjectId"]),
                                "type": f"{SINGULAR[object_type]}_to_{SINGULAR[OBJECT_TYPE_IDS.get(other, other)]}",
                            }
                            for e in entries
                        ]
                    }
            results.append(item)
        answer: dict[str, Any] = {"results": results}
        if len(ids) > limit:
            after = _encode_after(ids[limit])
            answer["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return answer

    def _with_history(self, object_type: str, record: dict[str, Any]) -> dict[str, Any]:
        if object_type != "deals":
            return record
        ids = self.store.ids
        return {**record, "_stage_ids": [(t, str(ids.get("stages", s))) for t, s in record["_history"]]}

    def _search(self, object_type: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HubSpotApiError(400, "Invalid input JSON: expected an object.")
        if len(json.dumps(body)) > SEARCH_BODY_MAX:
            raise HubSpotApiError(400, "The request body may not exceed 3000 characters.")
        search = Search(object_type, body)
        now, delays = self.store.now, self.store.index_delay
        records = self.objects(object_type).values()
        if delays:
            modified = last_modified_property(object_type)
            records = [
                r
                for r in records
                if (object_type, int(r["id"])) not in delays
                or _filter_ms(r["properties"][modified]) + delays[(object_type, int(r["id"]))] <= now
            ]
        return search.run(records)

    def _batch_read(self, object_type: str, body: Any) -> tuple[int, Any]:
        inputs = [str(i.get("id")) for i in (body or {}).get("inputs") or []]
        history = body.get("propertiesWithHistory") or None
        cap = HISTORY_MAX if history else BATCH_MAX
        if len(inputs) > cap:
            raise HubSpotApiError(
                400, f"Batch read accepts at most {cap} inputs{' with propertiesWithHistory' if history else ''}."
            )
        records = self.objects(object_type, archived=bool(body.get("archived")))
        found, missing = [], []
        for text in dict.fromkeys(inputs):
            record = records.get(int(text)) if text.isdigit() else None
            if record is None:
                missing.append(text)
            else:
                found.append(
                    render_properties(
                        object_type,
                        self._with_history(object_type, record),
                        body.get("properties"),
                        LIST_DEFAULTS,
                        history,
                    )
                )
        stamp = iso(int(time.time() * 1000))
        answer: dict[str, Any] = {"status": "COMPLETE", "results": found, "startedAt": stamp, "completedAt": stamp}
        if not missing:
            return 200, answer
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {object_type} objects, they may be deleted or not exist.",
                "context": {"ids": missing},
            }
        ]
        return 207, answer

    def _associations(self, src: str, dst: str, body: Any) -> tuple[int, Any]:
        inputs = (body or {}).get("inputs") or []
        if len(inputs) > ASSOC_BATCH_MAX:
            raise HubSpotApiError(400, f"Batch read accepts at most {ASSOC_BATCH_MAX} inputs.")
        pairs = self.store.view()["associations"].get((src, dst), {})
        known = self.objects(src)
        results, missing = [], []
        for item in inputs:
            text = str(item.get("id"))
            hs_id = int(text) if text.isdigit() else None
            if hs_id is None or hs_id not in known:
                missing.append(text)
                continue
            entries = pairs.get(hs_id, [])
            start = _decode_after(item["after"]) if item.get("after") else 0
            chunk = entries[start : start + self.association_page_size]
            if not chunk:
                continue  # no associations: absent from results
            result: dict[str, Any] = {"from": {"id": text}, "to": chunk}
            if start + self.association_page_size < len(entries):
                after = _encode_after(start + self.association_page_size)
                result["paging"] = {"next": {"after": after, "link": None}}
            results.append(result)
        stamp = iso(int(time.time() * 1000))
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp}
        if not missing:
            return 200, answer
        answer["numErrors"] = len(missing)
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"No {src} with id {m}",
                "context": {"fromObjectId": [m]},
            }
            for m in missing
        ]
        return 207, answer

    def _owners(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        archived = str(query.get("archived", ["false"])[0]).lower() == "true"
        try:
            limit = max(1, min(int(query.get("limit", ["100"])[0]), OWNERS_MAX))
        except ValueError as exc:
            raise HubSpotApiError(400, "limit must be an integer.") from exc
        owners = sorted(
            (o for o in self.store.view()["owners"] if o["archived"] == archived), key=lambda o: int(o["id"])
        )
        email = (query.get("email") or [None])[0]
        if email:
            owners = [o for o in owners if (o.get("email") or "").lower() == email.lower()]
        start = _decode_after(query["after"][0]) if query.get("after") else 0
        owners = [o for o in owners if int(o["id"]) >= start]
        answer: dict[str, Any] = {"results": owners[:limit]}
        if len(owners) > limit:
            after = _encode_after(int(owners[limit]["id"]))
            answer["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return answer
