"""A local fake of the amoCRM API v4, seeded from a file drop, for the connector's tests and the demo.

`FakeAmoCRM(drop_dir, token=...)` is a real HTTP server on 127.0.0.1 (a `ThreadingHTTPServer` in a
thread) that serves the drop's CRM as of its clock: every version with `updated_at <= now`, the
latest one winning, a deleted version removing the record (and answering a `*_deleted` event).
Admin calls move the clock between nights, change records and inject faults; `on_request(path, n,
callback)` runs a change (or anything) right after the n-th page of a path is computed, so a test
can change records while a client is paging.

Endpoint shapes follow the official PHP client (github.com/amocrm/amocrm-api-php, whose models
read exactly what the API answers) and the API reference (amocrm.ru/developers/content/crm_platform/).
Endpoint -> documentation (paths in amocrm/amocrm-api-php; "dev:" = amocrm.ru/developers page):

- `GET /api/v4/leads` (`with=contacts,loss_reason`): src/AmoCRM/Models/LeadModel.php,
  src/AmoCRM/Collections/Leads/LeadsCollection.php; dev: leads-api.
- `GET /api/v4/companies`: src/AmoCRM/Models/CompanyModel.php; dev: companies-api.
- `GET /api/v4/contacts`: src/AmoCRM/Models/ContactModel.php; dev: contacts-api.
- `GET /api/v4/{leads,companies,contacts}/custom_fields` and `custom_fields_values`:
  src/AmoCRM/Models/CustomFields/CustomFieldModel.php, src/AmoCRM/Models/CustomFieldsValues/*; dev: custom-fields.
- `GET /api/v4/leads/pipelines` (statuses in `_embedded.statuses`, won 142, lost 143):
  src/AmoCRM/Models/Leads/Pipelines/PipelineModel.php, .../Pipelines/Statuses/StatusModel.php; dev: leads_pipelines.
- `GET /api/v4/users`: src/AmoCRM/Models/UserModel.php, src/AmoCRM/Models/Rights/RightModel.php; dev: users-api.
- `GET /api/v4/account?with=users_groups,task_types`: src/AmoCRM/Models/AccountModel.php,
  src/AmoCRM/Models/AccountSettings/UsersGroup.php, .../AccountSettings/TaskType.php; dev: account-info.
- `GET /api/v4/events` (`filter[type]`, `filter[created_at][from]`, limit at most 100):
  src/AmoCRM/Models/EventModel.php, src/AmoCRM/Filters/EventsFilter.php; dev: events-and-notes
  ("Максимум – 100"; the English pages on kommo.com / amocrm.com say 250). The ORDER of events is a
  GUESS: newest first. Neither the reference nor the SDK documents one, and events take no `order`
  (EventsFilter.php has no OrderTrait, unlike LeadsFilter.php).
- `GET /api/v4/tasks`: src/AmoCRM/Models/TaskModel.php (TASK_TYPE_ID_CALL 1, TASK_TYPE_ID_MEETING 2),
  src/AmoCRM/Filters/TasksFilter.php; dev: tasks-api.
- `GET /api/v4/{leads,contacts,companies}/notes`: src/AmoCRM/Models/NoteModel.php; dev: events-and-notes.
- paging `page`/`limit` (default 50: src/AmoCRM/Filters/Traits/PagesFilterTrait.php; max 250: dev:
  leads-api "Максимум – 250"), `_page`, `_links.self/next`, `_embedded.<entity>`:
  src/AmoCRM/Collections/BaseApiCollection.php, src/AmoCRM/EntitiesServices/Traits/PageMethodsTrait.php
  (`nextPage` follows `_links.next`).
- 204 No Content for an empty page (past the last one, or nothing matches the filter):
  src/AmoCRM/Client/AmoCRMApiRequest.php (`checkHttpStatus`: 204 -> AmoCRMApiNoContentException, where
  clients that follow `nextPage` stop); dev: events-and-notes ("200 и 204, если событий по фильтру не
  найдено"). A full last page still has a `next` link (the page after it answers 204): a guess
  consistent with those clients.
- a `limit` over the maximum is not refused: the page holds the default 50 (with a `next` link when
  full). Seen for events (github.com/Krukov/amocrm_api issue #76, fixed by PR #95 asking for 100
  instead of 250); for the other lists a GUESS (amocrm/amocrm-api-php issue #210: a maintainer says
  "api/v4 returns at most 250 records on a page", a user that 400 falls back to 50).
- `filter[updated_at][from|to]`, `filter[id][]`, `order[updated_at|id]=asc|desc`:
  src/AmoCRM/Filters/BaseRangeFilter.php, src/AmoCRM/Filters/LeadsFilter.php, src/AmoCRM/Filters/Traits/*.
- errors: 401 with a problem JSON (`title`, `type`, `status`, `detail`; the SDK reads `detail`:
  AmoCRMApiRequest.php `checkHttpStatus`). 429 over 7 requests a second and 403 once the account is
  blocked after repeated abuse (dev: api/recommendations, quoted in amocrm/amocrm-api-php issues #318
  and #563) are HTML pages of the gateway, not JSON, and carry no `Retry-After`: AmoCRMApiRequest.php
  `parseResponse` raises AmoCRMApiTooManyRequestsException only for a 429 whose body is not JSON (added
  by PR #517: "429 ... Response body is not json"); issue #526 asks amoCRM for a Retry-After and
  notes that "429 отдает html, а не json"; issue #434 logs a blocked account's 403 body ("403
  Forbidden ... nginx"). The abuse threshold and how long a block lasts are GUESSES (a real account
  stays blocked until its support lifts it, issue #563). An injected 429 fault may add a
  `Retry-After` (`retry_after=`), to test a client honouring one.

How the drop is carried (drop field -> amoCRM field):

- ids: a drop id made of digits is the amoCRM id (`int(id)`); any other (users `u001`, pipelines
  `new_business`, stages `nb_01`) gets a stable integer (`fake.amo_id(entity, drop_id)`,
  `fake.drop_id(entity, amo_id)`). The stage entered by a won deal (canonical `closing`) is status
  142 and the lost stage is status 143, in every pipeline, as amoCRM requires: a stage is
  identified by (pipeline_id, status_id).
- users: full_name -> `name`, email -> `email`, team -> the user's group (`rights.group_id`, group
  names in `/api/v4/account?with=users_groups`), is_active -> `rights.is_active`.
- accounts -> companies: name -> `name`, owner_id -> `responsible_user_id`, created_at/updated_at ->
  Unix seconds; tax_id -> text custom field "ИНН", domain -> url custom field "Web" (code `WEB`),
  industry -> "Отрасль", country -> "Страна", employee_count -> numeric "Количество сотрудников".
  The field ids are per account (constructor `company_field_ids`), as in real accounts.
- contacts: full_name -> `name`, account_id -> `_embedded.companies[0].id`, email -> multitext
  `EMAIL` (enum_code WORK), phone -> multitext `PHONE` (WORK), job_title -> text `POSITION`.
- stages -> pipelines and their statuses: stage_name -> status `name`, display_order -> `sort`
  (display_order * 10), pipeline_id -> pipeline (`name` = the drop's pipeline id).
- deals -> leads: deal_name -> `name`, amount -> `price` (an integer in amoCRM) and the exact
  decimal in numeric custom field "Сумма сделки", owner_id -> `responsible_user_id`, account_id ->
  `_embedded.companies[0].id`, pipeline_id/stage_id -> `pipeline_id`/`status_id`, created_at,
  closed_at -> Unix seconds, lost_reason -> `loss_reason_id` and `_embedded.loss_reason[0].name`
  (`with=loss_reason`), expected_close_date -> date custom field "Ожидаемая дата закрытия" (Unix
  seconds of midnight UTC), lead_source -> text custom field "Источник", currency -> the account's
  `currency`; a deal in another currency also has text custom field "Валюта сделки". A lead's
  `updated_at` is the latest of its deal version and of its contact links.
- deal_contacts -> the lead's `_embedded.contacts[]` (`with=contacts`: `id`, `is_main`); the role
  goes in the lead's textarea custom field "Роли контактов" (`<contact id>=<role>;...`, the role empty
  when the drop has none), and
  `is_main` is true for the first decision maker.
- deal_stage_history -> events: a deal's first entry is its `lead_added` event (its status in
  `value_after[0].lead_status`), each later entry a `lead_status_changed` event
  (`value_before`/`value_after[0].lead_status.{id,pipeline_id}`), `created_at` = entered_at.
- activities -> completed tasks: channel -> `task_type_id` (1 call, 2 meeting, account task types
  for email, webinar, social, event, other), occurred_at -> `complete_till`, owner_id ->
  `responsible_user_id`, the deal (else the contact, else the account) -> `entity_type`/`entity_id`.
- deletions: `lead_deleted`, `company_deleted`, `contact_deleted`, `task_deleted` events at the
  deleted version's updated_at; the record leaves the lists.

What amoCRM cannot carry (so the fake does not serve it): users' updated_at (users have no
timestamps), stages' probability and canonical stage (configured downstream per status),
stages' updated_at, deal_contacts' updated_at (the lead's updated_at moves instead), an activity's
contact when it also has a deal (a task links one entity), an activity's account when it has a
deal or contact (derivable from them), the sort of the won/lost statuses (real accounts put 142
and 143 last; the fake keeps the drop's order), restoring a deleted record (`*_restored` events).
Call notes (`call_in`/`call_out`) would also carry calls; the fake carries every activity as a
task so each has exactly one record and one deletion event, and serves the notes endpoints empty.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from b2b_pipeline.filedrop.spec import entity as spec_entity
from b2b_pipeline.sources.drop_records import well_formed
from b2b_pipeline.sources.fake_server import LocalServer

ENTITIES = ("users", "accounts", "contacts", "stages", "deals", "deal_stage_history", "deal_contacts", "activities")
MAX_LIMIT = 250
MAX_EVENTS_LIMIT = 100
DEFAULT_LIMIT = 50
WON_STATUS, LOST_STATUS = 142, 143
ACCOUNT_ID = 31_415_926
# first integer of the ids given to drop ids that are not made of digits
_ID_BASE = {"users": 8_000_001, "pipelines": 7_000_001, "stages": 60_000_001, "groups": 400_001}
DEFAULT_COMPANY_FIELDS = {
    "tax_id": 1_264_013,
    "web": 1_264_011,
    "industry": 1_264_015,
    "country": 1_264_017,
    "employee_count": 1_264_019,
}
LEAD_FIELDS = {
    "amount": 1_265_001,
    "expected_close_date": 1_265_003,
    "lead_source": 1_265_005,
    "currency": 1_265_007,
    "contact_roles": 1_265_009,
}
CONTACT_FIELDS = {"phone": 1_263_001, "email": 1_263_003, "job_title": 1_263_005}
TASK_TYPES = {
    "call": 1,
    "meeting": 2,
    "email": 3_100_001,
    "webinar": 3_100_002,
    "social": 3_100_003,
    "event": 3_100_004,
    "other": 3_100_005,
}
_TASK_TYPE_NAMES = {
    "call": "Связаться",
    "meeting": "Встреча",
    "email": "Письмо",
    "webinar": "Вебинар",
    "social": "Соцсети",
    "event": "Мероприятие",
    "other": "Другое",
}
_LIST_KEYS = {
    "leads": "leads",
    "companies": "companies",
    "contacts": "contacts",
    "tasks": "tasks",
    "events": "events",
    "users": "users",
}
_PROBLEM_TYPE = "https://httpstatus.es/{}"
# amoCRM's gateway answers 429 and the 403 of a blocked account with an HTML page, not a problem JSON
# (amocrm/amocrm-api-php: src/AmoCRM/Client/AmoCRMApiRequest.php parseResponse, PR #517, issues #526,
# #434 (its logged 403 body), #318)
_HTML_ANSWER = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _epoch(text: str | None) -> int | None:
    """Unix seconds of an ISO 8601 timestamp of the drop (no offset means UTC)."""
    if not text:
        return None
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _truthy(text: Any) -> bool:
    return str(text or "").strip().lower() in ("true", "1")


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of one drop file (CSV with `,` or `;`, or JSON Lines; gzip or not)."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            raw = f.read()
    else:
        raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    if ".jsonl" in path.name:
        for line in text.splitlines():
            if line.strip():
                yield {k: (None if v is None else str(v)) for k, v in json.loads(line).items()}
        return
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    for row in csv.DictReader(io.StringIO(text), delimiter=delimiter):
        yield {k: (v if v != "" else None) for k, v in row.items()}


def read_drop(drop_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every well-formed CRM row of the drop per entity (`drop_records.well_formed`: a row the loader
    would quarantine is no record of the CRM), base files first then dated folders in date order."""
    crm = Path(drop_dir) / "crm"
    folders = [crm, *sorted(p for p in crm.iterdir() if p.is_dir())]
    out: dict[str, list[dict[str, Any]]] = {e: [] for e in ENTITIES}
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            entity = path.name.split(".", 1)[0]
            if entity in out:
                contract = spec_entity("crm", entity)
                out[entity].extend(row for row in _read_rows(path) if well_formed(contract, row))
    return out


@dataclass
class Fault:
    """A fault injected on the next `count` requests to `path` (after letting `after` through)."""

    path: str
    kind: str  # "500" / "502" / "503" / "504", "429", "timeout", "malformed"
    count: int = 1
    after: int = 0
    retry_after: int | None = None  # a `Retry-After` header on an injected 429 (amoCRM sends none)
    hang_seconds: float = 3.0


class IdMap:
    """Stable drop id <-> amoCRM integer id, per entity."""

    def __init__(self) -> None:
        self._to: dict[tuple[str, str], int] = {}
        self._from: dict[tuple[str, int], str] = {}
        self._next: dict[str, int] = {}

    def get(self, entity: str, drop_id: str) -> int:
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
            self.set(entity, text, value)
        return self._to[key]

    def set(self, entity: str, drop_id: str, value: int) -> None:
        self._to[(entity, str(drop_id))] = value
        self._from.setdefault((entity, value), str(drop_id))

    def back(self, entity: str, value: int) -> str:
        return self._from[(entity, int(value))]


def _cf(
    field_id: int, name: str, ftype: str, value: Any, *, code: str | None = None, enum_code: str | None = None
) -> dict[str, Any]:
    """One entry of `custom_fields_values` (CustomFieldValuesModel)."""
    item: dict[str, Any] = {"value": value}
    if enum_code:
        item["enum_id"] = None
        item["enum_code"] = enum_code
    return {"field_id": field_id, "field_name": name, "field_code": code, "field_type": ftype, "values": [item]}


class Store:
    """The drop's record versions and the fake's clock; renders amoCRM records as of `now`."""

    def __init__(self, drop_dir: Path, now: int | None, currency: str, company_fields: Mapping[str, int]) -> None:
        self.lock = threading.RLock()
        self.ids = IdMap()
        self.currency = currency
        self.company_fields = dict(company_fields)
        self.versions: dict[str, dict[Any, list[dict[str, Any]]]] = {e: {} for e in ENTITIES}
        self.history: list[dict[str, Any]] = []
        self.revision = 0
        rows = read_drop(drop_dir)
        latest = 0
        for entity in ENTITIES:
            for row in rows[entity]:
                if entity == "deal_stage_history":
                    row["_t"] = _epoch(row["entered_at"])
                    self.history.append(row)
                else:
                    self._add(entity, row)
                latest = max(latest, row["_t"])
        self.history.sort(key=lambda r: (r["deal_id"], r["_t"]))
        for entity in ("users", "stages", "accounts", "contacts", "deals", "activities"):  # stable ids: sorted
            for key in sorted(self.versions[entity]):
                if entity == "stages":
                    self._stage_id(self.versions[entity][key][-1])
                else:
                    self.ids.get(entity, key)
        self.now = now if now is not None else latest
        self._cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    @staticmethod
    def key_of(entity: str, row: Mapping[str, Any]) -> Any:
        if entity == "deal_contacts":
            return (str(row["deal_id"]), str(row["contact_id"]))
        return str(
            row[
                {
                    "users": "user_id",
                    "accounts": "account_id",
                    "contacts": "contact_id",
                    "stages": "stage_id",
                    "deals": "deal_id",
                    "activities": "activity_id",
                }[entity]
            ]
        )

    def _add(self, entity: str, row: dict[str, Any]) -> None:
        row["_t"] = _epoch(row.get("updated_at")) or 0
        versions = self.versions[entity].setdefault(self.key_of(entity, row), [])
        versions.append(row)
        versions.sort(key=lambda r: r["_t"])  # stable: a later file wins a tie

    def _stage_id(self, stage: Mapping[str, Any]) -> int:
        self.ids.get("pipelines", stage["pipeline_id"])
        if stage["canonical_stage"] == "closing":
            value = WON_STATUS
        elif stage["canonical_stage"] == "lost":
            value = LOST_STATUS
        else:
            return self.ids.get("stages", stage["stage_id"])
        self.ids.set("stages", stage["stage_id"], value)
        return value

    # -- state as of now -------------------------------------------------------------------------

    def current(self, entity: str) -> dict[Any, dict[str, Any]]:
        """Latest version of each record with updated_at <= now, deleted ones included."""
        out = {}
        for key, versions in self.versions[entity].items():
            seen = [v for v in versions if v["_t"] <= self.now]
            if seen:
                out[key] = seen[-1]
        return out

    def view(self) -> dict[str, Any]:
        """Every list the API serves, as of now (cached until the clock or the records change)."""
        with self.lock:
            stamp = (self.now, self.revision)
            if self._cache is None or self._cache[0] != stamp:
                self._cache = (stamp, self._render())
            return self._cache[1]

    def _render(self) -> dict[str, Any]:
        cur = {e: self.current(e) for e in ENTITIES if e != "deal_stage_history"}
        live = {e: {k: r for k, r in rows.items() if not _truthy(r.get("is_deleted"))} for e, rows in cur.items()}
        deleted = {e: {k: r for k, r in rows.items() if _truthy(r.get("is_deleted"))} for e, rows in cur.items()}
        teams = sorted({u["team"] for u in live["users"].values() if u.get("team")})
        groups = {t: _ID_BASE["groups"] + i for i, t in enumerate(teams)}
        links: dict[str, list[dict[str, Any]]] = {}
        for (deal_id, _), link in sorted(live["deal_contacts"].items()):
            if deal_id in live["deals"]:
                links.setdefault(deal_id, []).append(link)
        reasons = sorted({d["lost_reason"] for d in cur["deals"].values() if d.get("lost_reason")})
        reason_ids = {r: 9_100_001 + i for i, r in enumerate(reasons)}
        history = [h for h in self.history if h["_t"] <= self.now]
        return {
            "users": [self._user(u, groups) for u in live["users"].values()],
            "groups": [{"id": i, "name": t, "uuid": None} for t, i in groups.items()],
            "pipelines": self._pipelines(live["stages"]),
            "companies": [self._company(a) for a in live["accounts"].values()],
            "contacts": [self._contact(c) for c in live["contacts"].values()],
            "leads": [self._lead(d, links.get(k, []), reason_ids) for k, d in live["deals"].items()],
            "tasks": [self._task(a) for a in live["activities"].values()],
            "events": self._events(history, deleted, cur["deals"]),
        }

    def _links(self, path: str) -> dict[str, Any]:
        return {"self": {"href": f"https://fake.amocrm.ru{path}"}}

    def _user(self, u: Mapping[str, Any], groups: Mapping[str, int]) -> dict[str, Any]:
        uid = self.ids.get("users", u["user_id"])
        return {
            "id": uid,
            "name": u["full_name"],
            "email": u.get("email"),
            "lang": "ru",
            "rights": {
                "leads": {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
                "is_admin": False,
                "is_free": False,
                "is_active": _truthy(u.get("is_active")),
                "group_id": groups.get(u.get("team") or ""),
                "role_id": None,
            },
            "_links": self._links(f"/api/v4/users/{uid}"),
        }

    def _pipelines(self, stages: Mapping[Any, Mapping[str, Any]]) -> list[dict[str, Any]]:
        by_pipeline: dict[str, list[Mapping[str, Any]]] = {}
        for s in stages.values():
            by_pipeline.setdefault(s["pipeline_id"], []).append(s)
        out = []
        for sort, pipeline in enumerate(sorted(by_pipeline, key=lambda p: self.ids.get("pipelines", p))):
            pid = self.ids.get("pipelines", pipeline)
            statuses = [
                {
                    "id": self._stage_id(s),
                    "name": s["stage_name"],
                    "sort": int(s["display_order"]) * 10,
                    "is_editable": self._stage_id(s) not in (WON_STATUS, LOST_STATUS),
                    "pipeline_id": pid,
                    "color": "#99ccff",
                    "type": 0,
                    "account_id": ACCOUNT_ID,
                    "_links": self._links(f"/api/v4/leads/pipelines/{pid}/statuses/{self._stage_id(s)}"),
                }
                for s in sorted(by_pipeline[pipeline], key=lambda s: int(s["display_order"]))
            ]
            out.append(
                {
                    "id": pid,
                    "name": pipeline,
                    "sort": (sort + 1) * 10,
                    "is_main": sort == 0,
                    "is_unsorted_on": False,
                    "is_archive": False,
                    "account_id": ACCOUNT_ID,
                    "_links": self._links(f"/api/v4/leads/pipelines/{pid}"),
                    "_embedded": {"statuses": statuses},
                }
            )
        return out

    def _company(self, a: Mapping[str, Any]) -> dict[str, Any]:
        aid = self.ids.get("accounts", a["account_id"])
        f = self.company_fields
        fields = []
        if a.get("tax_id"):
            fields.append(_cf(f["tax_id"], "ИНН", "text", a["tax_id"]))
        if a.get("domain"):
            fields.append(_cf(f["web"], "Web", "url", a["domain"], code="WEB"))
        if a.get("industry"):
            fields.append(_cf(f["industry"], "Отрасль", "text", a["industry"]))
        if a.get("country"):
            fields.append(_cf(f["country"], "Страна", "text", a["country"]))
        if a.get("employee_count"):
            fields.append(_cf(f["employee_count"], "Количество сотрудников", "numeric", a["employee_count"]))
        return {
            "id": aid,
            "name": a["name"],
            "responsible_user_id": self.ids.get("users", a["owner_id"]) if a.get("owner_id") else None,
            "group_id": 0,
            "created_by": 0,
            "updated_by": 0,
            "created_at": _epoch(a["created_at"]),
            "updated_at": a["_t"],
            "closest_task_at": None,
            "is_deleted": False,
            "custom_fields_values": fields or None,
            "account_id": ACCOUNT_ID,
            "_links": self._links(f"/api/v4/companies/{aid}"),
            "_embedded": {"tags": []},
        }

    def _contact(self, c: Mapping[str, Any]) -> dict[str, Any]:
        cid = self.ids.get("contacts", c["contact_id"])
        fields = []
        if c.get("phone"):
            fields.append(
                _cf(CONTACT_FIELDS["phone"], "Телефон", "multitext", c["phone"], code="PHONE", enum_code="WORK")
            )
        if c.get("email"):
            fields.append(
                _cf(CONTACT_FIELDS["email"], "Email", "multitext", c["email"], code="EMAIL", enum_code="WORK")
            )
        if c.get("job_title"):
            fields.append(_cf(CONTACT_FIELDS["job_title"], "Должность", "text", c["job_title"], code="POSITION"))
        companies = []
        if c.get("account_id"):
            company = self.ids.get("accounts", c["account_id"])
            companies.append({"id": company, "_links": self._links(f"/api/v4/companies/{company}")})
        return {
            "id": cid,
            "name": c.get("full_name") or "",
            "first_name": "",
            "last_name": "",
            "responsible_user_id": None,
            "group_id": 0,
            "created_by": 0,
            "updated_by": 0,
            "created_at": _epoch(c["created_at"]),
            "updated_at": c["_t"],
            "closest_task_at": None,
            "is_deleted": False,
            "is_unsorted": False,
            "custom_fields_values": fields or None,
            "account_id": ACCOUNT_ID,
            "_links": self._links(f"/api/v4/contacts/{cid}"),
            "_embedded": {"tags": [], "companies": companies},
        }

    def _lead(self, d: Mapping[str, Any], links: list[Mapping[str, Any]], reasons: Mapping[str, int]) -> dict:
        lid = self.ids.get("deals", d["deal_id"])
        stage = self.versions["stages"].get(d["stage_id"])
        status = self._stage_id(stage[-1]) if stage else self.ids.get("stages", d["stage_id"])
        amount = str(d["amount"]).replace(",", ".")
        fields = [_cf(LEAD_FIELDS["amount"], "Сумма сделки", "numeric", amount)]
        if d.get("expected_close_date"):
            day = date.fromisoformat(d["expected_close_date"])
            fields.append(
                _cf(
                    LEAD_FIELDS["expected_close_date"],
                    "Ожидаемая дата закрытия",
                    "date",
                    int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()),
                )
            )
        if d.get("lead_source"):
            fields.append(_cf(LEAD_FIELDS["lead_source"], "Источник", "text", d["lead_source"]))
        if d.get("currency") and d["currency"] != self.currency:
            fields.append(_cf(LEAD_FIELDS["currency"], "Валюта сделки", "text", d["currency"]))
        main = next((str(link["contact_id"]) for link in links if link.get("role") == "decision_maker"), None)
        if links:
            roles = ";".join(
                f"{self.ids.get('contacts', link['contact_id'])}={link.get('role') or ''}" for link in links
            )
            fields.append(_cf(LEAD_FIELDS["contact_roles"], "Роли контактов", "textarea", roles))
        embedded: dict[str, Any] = {"tags": [], "companies": []}
        if d.get("account_id"):
            company = self.ids.get("accounts", d["account_id"])
            embedded["companies"].append({"id": company, "_links": self._links(f"/api/v4/companies/{company}")})
        embedded["contacts"] = [
            {
                "id": self.ids.get("contacts", link["contact_id"]),
                "is_main": str(link["contact_id"]) == main,
                "_links": self._links(f"/api/v4/contacts/{self.ids.get('contacts', link['contact_id'])}"),
            }
            for link in links
        ]
        reason = d.get("lost_reason")
        if reason:
            embedded["loss_reason"] = [
                {
                    "id": reasons[reason],
                    "name": reason,
                    "sort": 10,
                    "created_at": 0,
                    "updated_at": 0,
                    "_links": self._links(f"/api/v4/leads/loss_reasons/{reasons[reason]}"),
                }
            ]
        return {
            "id": lid,
            "name": d.get("deal_name") or "",
            "price": int(float(amount)),
            "responsible_user_id": self.ids.get("users", d["owner_id"]) if d.get("owner_id") else None,
            "group_id": 0,
            "status_id": status,
            "pipeline_id": self.ids.get("pipelines", d["pipeline_id"]) if d.get("pipeline_id") else None,
            "loss_reason_id": reasons.get(reason) if reason else None,
            "created_by": 0,
            "updated_by": 0,
            "created_at": _epoch(d["created_at"]),
            "updated_at": max([d["_t"]] + [link["_t"] for link in links]),
            "closed_at": _epoch(d.get("closed_at")),
            "closest_task_at": None,
            "is_deleted": False,
            "custom_fields_values": fields,
            "score": None,
            "account_id": ACCOUNT_ID,
            "labor_cost": None,
            "_links": self._links(f"/api/v4/leads/{lid}"),
            "_embedded": embedded,
        }

    def _task(self, a: Mapping[str, Any]) -> dict[str, Any]:
        tid = self.ids.get("activities", a["activity_id"])
        if a.get("deal_id"):
            etype, eid = "leads", self.ids.get("deals", a["deal_id"])
        elif a.get("contact_id"):
            etype, eid = "contacts", self.ids.get("contacts", a["contact_id"])
        elif a.get("account_id"):
            etype, eid = "companies", self.ids.get("accounts", a["account_id"])
        else:
            etype, eid = None, None
        occurred = _epoch(a["occurred_at"])
        return {
            "id": tid,
            "created_by": 0,
            "updated_by": 0,
            "created_at": occurred,
            "updated_at": a["_t"],
            "responsible_user_id": self.ids.get("users", a["owner_id"]) if a.get("owner_id") else None,
            "group_id": 0,
            "entity_id": eid,
            "entity_type": etype,
            "duration": 0,
            "is_completed": True,
            "task_type_id": TASK_TYPES.get(a["channel"], TASK_TYPES["other"]),
            "text": _TASK_TYPE_NAMES.get(a["channel"], "Другое"),
            "result": {"text": a["channel"]},
            "complete_till": occurred,
            "account_id": ACCOUNT_ID,
            "_links": self._links(f"/api/v4/tasks/{tid}"),
        }

    def _event(
        self, etype: str, entity: str, eid: int, created_at: int, created_by: int, before: list[Any], after: list[Any]
    ) -> dict[str, Any]:
        digest = hashlib.sha1(f"{etype}:{entity}:{eid}:{created_at}:{json.dumps(after)}".encode()).hexdigest()
        ev_id = "01" + digest[:24]
        return {
            "id": ev_id,
            "type": etype,
            "entity_id": eid,
            "entity_type": entity,
            "created_by": created_by,
            "created_at": created_at,
            "value_after": after,
            "value_before": before,
            "account_id": ACCOUNT_ID,
            "_links": self._links(f"/api/v4/events/{ev_id}"),
            "_embedded": {"entity": {"id": eid, "_links": self._links(f"/api/v4/{entity}s/{eid}")}},
        }

    def _events(
        self,
        history: list[Mapping[str, Any]],
        deleted: Mapping[str, Mapping[Any, Any]],
        deals: Mapping[Any, Mapping[str, Any]],
    ) -> list[dict[str, Any]]:
        out = []
        previous: dict[str, dict[str, Any]] = {}
        for h in history:  # sorted by deal, entered_at
            deal = deals.get(str(h["deal_id"])) or {}
            stage_rows = self.versions["stages"].get(h["stage_id"])
            pipeline = stage_rows[-1]["pipeline_id"] if stage_rows else deal.get("pipeline_id")
            status = {
                "lead_status": {
                    "id": self._stage_id(stage_rows[-1]) if stage_rows else 0,
                    "pipeline_id": self.ids.get("pipelines", pipeline) if pipeline else None,
                }
            }
            lid = self.ids.get("deals", h["deal_id"])
            owner = self.ids.get("users", deal["owner_id"]) if deal.get("owner_id") else 0
            before = previous.get(str(h["deal_id"]))
            if before is None:
                out.append(self._event("lead_added", "lead", lid, h["_t"], owner, [], [status]))
            else:
                out.append(self._event("lead_status_changed", "lead", lid, h["_t"], owner, [before], [status]))
            previous[str(h["deal_id"])] = status
        for entity, amo_entity, etype in (
            ("deals", "deals", "lead"),
            ("accounts", "accounts", "company"),
            ("contacts", "contacts", "contact"),
            ("activities", "activities", "task"),
        ):
            for key, row in deleted[entity].items():
                out.append(self._event(f"{etype}_deleted", etype, self.ids.get(amo_entity, key), row["_t"], 0, [], []))
        return out

    # -- admin -----------------------------------------------------------------------------------

    def change(self, entity: str, key: Any, changes: Mapping[str, Any], *, delete: bool = False) -> int:
        """A new version of a record (or a new record) at the clock's now; a stage change of a deal
        also enters the deal into that stage (a history row)."""
        with self.lock:
            if entity not in ENTITIES or entity == "deal_stage_history":
                raise ValueError(f"unknown entity {entity!r}")
            key = tuple(str(k) for k in key) if entity == "deal_contacts" else str(key)
            versions = self.versions[entity].get(key)
            base = {k: v for k, v in versions[-1].items() if k != "_t"} if versions else {}
            row = {**base, **{k: (None if v is None else str(v)) for k, v in changes.items()}}
            if entity == "deal_contacts":
                row["deal_id"], row["contact_id"] = key
            else:
                row[
                    {
                        "users": "user_id",
                        "accounts": "account_id",
                        "contacts": "contact_id",
                        "stages": "stage_id",
                        "deals": "deal_id",
                        "activities": "activity_id",
                    }[entity]
                ] = key
            row["updated_at"] = datetime.fromtimestamp(self.now, UTC).isoformat()
            if "is_deleted" in row or delete:
                row["is_deleted"] = "true" if delete else "false"
            self._add(entity, row)
            if entity == "deals" and "stage_id" in changes and (not base or base.get("stage_id") != row["stage_id"]):
                self.history.append(
                    {"deal_id": key, "stage_id": row["stage_id"], "entered_at": row["updated_at"], "_t": self.now}
                )
                self.history.sort(key=lambda r: (r["deal_id"], r["_t"]))
            self.revision += 1
            if entity == "stages":
                return self._stage_id(row)
            if entity == "deal_contacts":
                return self.ids.get("deals", key[0])
            return self.ids.get(entity, key)


def _html_answer(status: int) -> bytes:
    """The gateway's HTML page answering a 429 or a blocked account's 403."""
    return _HTML_ANSWER.format(status=status, phrase=HTTPStatus(status).phrase).encode()


def _problem(status: int, detail: str) -> dict[str, Any]:
    """amoCRM's error body (RFC 7807 problem JSON)."""
    return {
        "title": HTTPStatus(status).phrase,
        "type": _PROBLEM_TYPE.format(status),
        "status": status,
        "detail": detail,
    }


def _range(query: Mapping[str, list[str]], name: str) -> tuple[int | None, int | None]:
    """`filter[<name>][from]`/`[to]`, or `filter[<name>]=from,to` / a single value."""
    lo = query.get(f"filter[{name}][from]", [None])[0]
    hi = query.get(f"filter[{name}][to]", [None])[0]
    single = query.get(f"filter[{name}]", [None])[0]
    if single is not None:
        parts = single.split(",")
        lo, hi = parts[0], parts[1] if len(parts) > 1 else parts[0]
    return (int(lo) if lo not in (None, "") else None, int(hi) if hi not in (None, "") else None)


def _multi(query: Mapping[str, list[str]], name: str) -> set[str]:
    values = query.get(f"filter[{name}][]", []) + query.get(f"filter[{name}]", [])
    return {v for value in values for v in value.split(",") if v}


class FakeAmoCRM(LocalServer):
    """The fake amoCRM server. Use as a context manager, or `start()`/`stop()`."""

    def __init__(
        self,
        drop_dir: Path,
        *,
        token: str,
        now: datetime | None = None,
        requests_per_second: int = 7,
        currency: str = "RUB",
        company_field_ids: Mapping[str, int] | None = None,
        abuse_threshold: int = 20,
        block_seconds: float = 5.0,
    ) -> None:
        self.token = token
        self.requests_per_second = requests_per_second
        self.abuse_threshold = abuse_threshold
        self.block_seconds = block_seconds
        fields = {**DEFAULT_COMPANY_FIELDS, **(company_field_ids or {})}
        self.store = Store(Path(drop_dir), int(now.timestamp()) if now else None, currency, fields)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, dict[str, list[str]], int]] = []  # (path, query, status) of API calls
        self._hooks: list[list[Any]] = []  # [path, n, callback, served so far, where] (see `on_request`)
        self._window: deque[float] = deque()
        self._violations: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeAmoCRM:
        return self.serve_methods("fake-amocrm")

    # -- test helpers -----------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.store.now, UTC)

    def set_clock(self, now: datetime) -> None:
        with self.store.lock:
            self.store.now = int(now.timestamp())

    def amo_id(self, entity: str, drop_id: str) -> int:
        """The amoCRM id serving a drop record (entity: users, accounts, contacts, pipelines, stages,
        deals, activities)."""
        if entity == "stages":
            return self.store._stage_id(self.store.versions["stages"][str(drop_id)][-1])
        return self.store.ids.get(entity, drop_id)

    def drop_id(self, entity: str, amo_id: int | None) -> str | None:
        """The drop id an amoCRM id serves (None for None)."""
        return None if amo_id is None else self.store.ids.back(entity, amo_id)

    def change_record(
        self, entity: str, drop_id: Any, changes: Mapping[str, Any] | None = None, *, delete: bool = False
    ) -> int:
        return self.store.change(entity, drop_id, changes or {}, delete=delete)

    def inject_fault(self, path: str, kind: str, **kwargs: Any) -> None:
        with self._lock:
            self.faults.append(Fault(path, kind, **kwargs))

    def on_request(
        self,
        path: str,
        n: int,
        callback: Callable[[FakeAmoCRM], None],
        where: Callable[[Mapping[str, list[str]]], bool] | None = None,
    ) -> None:
        """Run `callback(fake)` once, when the `n`-th answered request of `path` (1 = the first; faults,
        429s and 401s not counted; with `where`, only requests whose query it accepts) has been
        computed and before it is sent: a change made while a client is paging (the page it gets
        shows the state before the change, the next one after)."""
        if n < 1:
            raise ValueError("n counts from 1")
        with self._lock:
            self._hooks.append([path, n, callback, 0, where])

    def request_count(self, path: str | None = None) -> int:
        return sum(1 for p, _, _ in self.requests if path is None or p == path)

    # -- HTTP -------------------------------------------------------------------------------------

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] = (),
        raw: bytes | None = None,
    ) -> None:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body, ensure_ascii=False).encode())
        h.answered = status  # type: ignore[attr-defined]
        h.send_response(status)
        ctype = "application/problem+json" if status >= 400 else "application/hal+json"
        if raw is not None and raw.startswith(b"<html>"):
            ctype = "text/html"
        if data:
            h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in dict(headers).items():
            h.send_header(k, v)
        h.end_headers()
        if data:
            h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query, keep_blank_values=True)
        admin = url.path.startswith("/_admin/")
        try:
            if admin:
                self._admin(h, method, url.path, query)
            else:
                self._api(h, method, url.path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): the answer is still recorded
        finally:
            if not admin:
                with self._lock:
                    self.requests.append((url.path, query, getattr(h, "answered", 0)))

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

    def _rate_answer(self) -> int | None:
        """429 over the documented rate (more than `requests_per_second` in a second), 403 while
        blocked after repeated abuse (more than `abuse_threshold` 429s within ten seconds)."""
        with self._lock:
            t = time.monotonic()
            if t < self._blocked_until:
                return 403
            while self._window and t - self._window[0] >= 1.0:
                self._window.popleft()
            self._window.append(t)
            if len(self._window) <= self.requests_per_second:
                return None
            self._violations.append(t)
            while self._violations and t - self._violations[0] >= 10.0:
                self._violations.popleft()
            if len(self._violations) > self.abuse_threshold:
                self._blocked_until = t + self.block_seconds
                self._violations.clear()
                return 403
            return 429

    def _api(self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]]) -> int:
        fault = self._take_fault(path)
        if fault is not None:
            if fault.kind == "429":
                headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                self._send(h, 429, raw=_html_answer(429), headers=headers)
                return 429
            if fault.kind == "timeout":
                h.answered = 504  # type: ignore[attr-defined]
                time.sleep(fault.hang_seconds)
                self._send(h, 504, _problem(504, "Gateway Timeout"))
                return 504
            if fault.kind == "malformed":
                self._send(h, 200, raw=b'{"_page":1,"_links":{"self":{"href":"')
                return 200
            status = int(fault.kind)
            self._send(h, status, _problem(status, "Internal error"))
            return status
        limited = self._rate_answer()
        if limited is not None:  # an HTML page from the gateway, without Retry-After (see _HTML_ANSWER)
            self._send(h, limited, raw=_html_answer(limited))
            return limited
        auth = h.headers.get("Authorization", "")
        if auth != f"Bearer {self.token}":
            self._send(h, 401, _problem(401, "Unauthorized"))
            return 401
        if method != "GET":
            self._send(h, 405, _problem(405, "Method Not Allowed"))
            return 405
        try:
            status, body = self._route(path, query)
        except ValueError as exc:
            status, body = 400, _problem(400, str(exc))
        self._run_hooks(path, query)
        self._send(h, status, body)
        return status

    def _run_hooks(self, path: str, query: Mapping[str, list[str]]) -> None:
        due = []
        with self._lock:
            for hook in self._hooks:
                if hook[0] == path and (hook[4] is None or hook[4](query)):
                    hook[3] += 1
                    if hook[3] == hook[1]:
                        due.append(hook[2])
        for callback in due:  # outside the lock: a callback may change records or inject faults
            callback(self)

    def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        view = self.store.view()
        parts = path.rstrip("/").split("/")[3:]  # after /api/v4
        if path.startswith("/api/v4/") and len(parts) >= 1:
            name = "/".join(parts)
            if name == "account":
                return 200, self._account(query)
            if name == "leads/pipelines":
                items = view["pipelines"]
                return 200, {
                    "_total_items": len(items),
                    "_links": self.store._links("/api/v4/leads/pipelines"),
                    "_embedded": {"pipelines": items},
                }
            if name in ("leads/custom_fields", "companies/custom_fields", "contacts/custom_fields"):
                return self._page(path, query, "custom_fields", self._custom_fields(parts[0]))
            if name in ("leads/notes", "contacts/notes", "companies/notes"):
                return self._page(path, query, "notes", [])
            if name in ("leads", "companies", "contacts", "tasks", "users"):
                items = view[name]
                items = self._filter(items, query)
                if name == "leads":
                    withs = set(",".join(query.get("with", [])).split(","))
                    items = [self._lead_with(item, withs) for item in items]
                return self._page(path, query, _LIST_KEYS[name], items)
            if name == "events":
                return self._page(
                    path, query, "events", self._filter_events(view["events"], query), max_limit=MAX_EVENTS_LIMIT
                )
        return 404, _problem(404, "Not Found")

    @staticmethod
    def _lead_with(item: dict[str, Any], withs: set[str]) -> dict[str, Any]:
        embedded = dict(item["_embedded"])
        if "contacts" not in withs:
            embedded.pop("contacts", None)
        if "loss_reason" not in withs:
            embedded.pop("loss_reason", None)
        return {**item, "_embedded": embedded}

    def _account(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        withs = set(",".join(query.get("with", [])).split(","))
        body: dict[str, Any] = {
            "id": ACCOUNT_ID,
            "name": "Демо-продавец",
            "subdomain": "fake",
            "created_at": 1_577_836_800,
            "created_by": 0,
            "updated_at": 1_577_836_800,
            "updated_by": 0,
            "current_user_id": 0,
            "country": "RU",
            "currency": self.store.currency,
            "currency_symbol": {"RUB": "₽", "USD": "$", "EUR": "€"}.get(self.store.currency, self.store.currency),
            "customers_mode": "disabled",
            "is_unsorted_on": False,
            "mobile_feature_version": 0,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": False,
            "contact_name_display_order": 1,
            "_links": self.store._links("/api/v4/account"),
        }
        embedded: dict[str, Any] = {}
        if "users_groups" in withs:
            embedded["users_groups"] = self.store.view()["groups"]
        if "task_types" in withs:
            embedded["task_types"] = [
                {
                    "id": i,
                    "name": _TASK_TYPE_NAMES[k],
                    "color": None,
                    "icon_id": None,
                    "code": k.upper() if i in (1, 2) else None,
                }
                for k, i in TASK_TYPES.items()
            ]
        if embedded:
            body["_embedded"] = embedded
        return body

    def _custom_fields(self, entity: str) -> list[dict[str, Any]]:
        f = self.store.company_fields
        spec = {
            "companies": [
                (f["tax_id"], "ИНН", "text", None),
                (f["web"], "Web", "url", "WEB"),
                (f["industry"], "Отрасль", "text", None),
                (f["country"], "Страна", "text", None),
                (f["employee_count"], "Количество сотрудников", "numeric", None),
            ],
            "contacts": [
                (CONTACT_FIELDS["phone"], "Телефон", "multitext", "PHONE"),
                (CONTACT_FIELDS["email"], "Email", "multitext", "EMAIL"),
                (CONTACT_FIELDS["job_title"], "Должность", "text", "POSITION"),
            ],
            "leads": [
                (LEAD_FIELDS["amount"], "Сумма сделки", "numeric", None),
                (LEAD_FIELDS["expected_close_date"], "Ожидаемая дата закрытия", "date", None),
                (LEAD_FIELDS["lead_source"], "Источник", "text", None),
                (LEAD_FIELDS["currency"], "Валюта сделки", "text", None),
                (LEAD_FIELDS["contact_roles"], "Роли контактов", "textarea", None),
            ],
        }[entity]
        return [
            {
                "id": fid,
                "name": name,
                "type": ftype,
                "account_id": ACCOUNT_ID,
                "code": code,
                "sort": i * 10,
                "is_api_only": False,
                "enums": None,
                "request_id": None,
                "group_id": None,
                "required_statuses": [],
                "is_deletable": code is None,
                "is_predefined": code is not None,
                "entity_type": entity,
                "remind": None,
                "_links": self.store._links(f"/api/v4/{entity}/custom_fields/{fid}"),
            }
            for i, (fid, name, ftype, code) in enumerate(spec)
        ]

    @staticmethod
    def _filter(items: list[dict[str, Any]], query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        lo, hi = _range(query, "updated_at")
        ids = _multi(query, "id")
        out = [
            i
            for i in items
            if (lo is None or i.get("updated_at", 0) >= lo)
            and (hi is None or i.get("updated_at", 0) <= hi)
            and (not ids or str(i["id"]) in ids)
        ]
        order = [(k[6:-1], v[0]) for k, v in query.items() if k.startswith("order[")]
        if order:
            field, direction = order[0]
            if field not in ("updated_at", "id", "created_at"):
                raise ValueError(f"order by {field} is not supported")
            out.sort(key=lambda i: (i.get(field) or 0, i["id"]), reverse=direction == "desc")
        else:
            out.sort(key=lambda i: i["id"])
        return out

    @staticmethod
    def _filter_events(items: list[dict[str, Any]], query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        types = _multi(query, "type")
        entities = _multi(query, "entity")
        lo, hi = _range(query, "created_at")
        out = [
            e
            for e in items
            if (not types or e["type"] in types)
            and (not entities or e["entity_type"] in entities)
            and (lo is None or e["created_at"] >= lo)
            and (hi is None or e["created_at"] <= hi)
        ]
        out.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)  # newest first, as amoCRM answers
        return out

    def _page(
        self, path: str, query: Mapping[str, list[str]], key: str, items: list[Any], *, max_limit: int = MAX_LIMIT
    ) -> tuple[int, Any]:
        try:
            page = int(query.get("page", ["1"])[0] or 1)
            limit = int(query.get("limit", [str(DEFAULT_LIMIT)])[0] or DEFAULT_LIMIT)
        except ValueError as exc:
            raise ValueError("page and limit must be integers") from exc
        if page < 1 or limit < 1:
            raise ValueError("page and limit must be positive")
        if limit > max_limit:  # over the maximum: the default page size, not the maximum (see the module doc)
            limit = DEFAULT_LIMIT
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            return 204, None
        flat = {k: v[0] if len(v) == 1 else ",".join(v) for k, v in query.items() if k not in ("page", "limit")}

        def href(p: int) -> dict[str, str]:
            return {"href": f"{self.base_url}{path}?{urlencode({**flat, 'page': p, 'limit': limit})}"}

        links: dict[str, Any] = {"self": href(page)}
        if len(chunk) == limit:  # a full page: there may be more (amoCRM does not count them)
            links["next"] = href(page + 1)
        if page > 1:
            links["prev"] = href(page - 1)
        return 200, {"_page": page, "_links": links, "_embedded": {key: chunk}}

    def _admin(self, h: BaseHTTPRequestHandler, method: str, path: str, query: Mapping[str, list[str]]) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            body = json.loads(h.rfile.read(length) or b"{}") if length else {}
            if path == "/_admin/clock":
                if method == "POST":
                    if "now" in body:
                        self.set_clock(datetime.fromisoformat(body["now"]))
                    elif "advance_seconds" in body:
                        self.set_clock(datetime.fromtimestamp(self.store.now + int(body["advance_seconds"]), UTC))
                return self._send(h, 200, {"now": self.now.isoformat(), "epoch": self.store.now})
            if path == "/_admin/fault" and method == "POST":
                self.inject_fault(body.pop("path"), str(body.pop("kind")), **body)
                return self._send(h, 200, {"faults": len(self.faults)})
            if path == "/_admin/records" and method == "POST":
                amo = self.change_record(
                    body["entity"], body["id"], body.get("set") or {}, delete=bool(body.get("delete"))
                )
                return self._send(h, 200, {"amo_id": amo, "updated_at": self.store.now})
            if path == "/_admin/requests":
                return self._send(h, 200, {"requests": [[p, q, s] for p, q, s in self.requests]})
            return self._send(h, 404, _problem(404, "Not Found"))
        except (KeyError, TypeError, ValueError) as exc:
            return self._send(h, 400, _problem(400, f"bad admin call: {exc}"))
