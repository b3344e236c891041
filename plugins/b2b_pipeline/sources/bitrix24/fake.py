"""A local fake of a Bitrix24 portal's REST API (inbound webhook), seeded from a file drop.

What it is: a real HTTP server (`ThreadingHTTPServer` on 127.0.0.1, a free port) that serves the
CRM records of a file drop made by the demo generator as Bitrix24 would serve them, as of its
clock, so that the connector's tests (and the demo) run without a portal. It keeps state: admin
calls move the clock between nights, change and delete records, and inject faults;
`on_call(method, n, callback)` runs a change right after the n-th answer of a method is computed, so
a test can change records while a client is paging.

    with FakeBitrix24(drop_dir, webhook_user=1, webhook_secret="s3cr3t") as fake:
        fake.webhook_url  # http://127.0.0.1:PORT/rest/1/s3cr3t/

Which public documentation each endpoint follows (github.com/bitrix-tools/b24-rest-docs):

| endpoint | shape follows |
|---|---|
| `/rest/<user>/<secret>/<method>[.json]`, GET/POST, JSON/form | api-reference/how-to-call-rest-api/authorization.md |
| `crm.deal.list` | api-reference/crm/deals/crm-deal-list.md (filter prefixes, order, select masks `*`/`UF_*`, start) |
| `crm.company.list` | api-reference/crm/companies/crm-company-list.md (multi-field WEB only when selected) |
| `crm.requisite.list` | api-reference/crm/requisites/universal/crm-requisite-list.md (RQ_INN, ENTITY_TYPE_ID 4) |
| `crm.contact.list` | api-reference/crm/contacts/crm-contact-list.md (EMAIL, PHONE multi-fields only when selected) |
| `crm.deal.contact.items.get` | api-reference/crm/deals/contacts/crm-deal-contact-items-get.md (integers) |
| `batch` | api-reference/how-to-call-rest-api/batch.md (50 commands, halt, result/result_error/result_total/...) |
| `crm.status.list` | api-reference/crm/status/crm-status-list.md (DEAL_STAGE / DEAL_STAGE_<n>, SEMANTICS) |
| `crm.category.list` | api-reference/crm/universal/category/crm-category-list.md (result.categories, camelCase) |
| `crm.stagehistory.list` | api-reference/crm/crm-stage-history-list.md (entityTypeId 2, result.items, integer values) |
| `crm.activity.list` | api-reference/crm/timeline/activities/activity-base/crm-activity-list.md |
| `user.get` | api-reference/user/user-get.md (ACTIVE boolean, paging by start) |
| paging: 50 a page, `next`, `total` | api-reference/how-to-call-rest-api/list-methods-pecularities.md |
| `start=-1`: no count (`total` 0, no `next`) | api-reference/performance/huge-data.md |
| `time` block (`operating`, `operating_reset_at`) | limits.md, api-reference/data-types.md#time |
| 503 `QUERY_LIMIT_EXCEEDED` "Too many requests" (leaky bucket: 2/s, 50) | limits.md, _includes/system-errors.md |
| 429 `OPERATION_TIME_LIMIT` (method time summed over 10 one-minute buckets) | limits.md |
| no `Retry-After` on 503/429: back off with growing delays (429: `operating_reset_at`) | limits.md |
| `crm.stagehistory.list` pages as any list (`start`, `next`, `total`) | api-reference/crm/crm-stage-history-list.md |
| 401 `NO_AUTH_FOUND` (wrong webhook), 500 `INTERNAL_SERVER_ERROR` | _includes/system-errors.md, error-info.md |

Where each fact of the drop goes (the exact reverse mapping for dbt is in MAPPING.md):

- ids: every drop id gets a stable integer Bitrix24 `ID` (in the order the records were created;
  `fake.b24_id(entity, drop_id)` / `fake.drop_id(entity, b24_id)`), and the drop id itself is kept
  where Bitrix24 keeps an external system's id: ORIGIN_ID (with ORIGINATOR_ID `b2b-file-drop`) of
  companies, contacts, deals and activities, XML_ID of users, so that marts built through the API
  can carry the same ids as marts built from the drop. Stages keep the drop's stage
  id as `STATUS_ID` (prefixed `C<n>:` outside the default funnel, as Bitrix24 does); each drop
  pipeline is a deal category (funnel) whose `name` is the drop's pipeline id.
- users (`user.get`): full_name -> NAME (LAST_NAME empty), email -> EMAIL, team -> WORK_DEPARTMENT,
  is_active -> ACTIVE.
- accounts (`crm.company.list`): name -> TITLE, domain -> WEB (multi-field), industry ->
  UF_CRM_INDUSTRY, country -> UF_CRM_COUNTRY, employee_count -> UF_CRM_EMPLOYEE_COUNT, owner ->
  ASSIGNED_BY_ID, created_at -> DATE_CREATE, updated_at -> DATE_MODIFY; tax_id -> a requisite
  (`crm.requisite.list`, ENTITY_TYPE_ID 4, ENTITY_ID = company ID) field RQ_INN.
- contacts: full_name -> NAME, account -> COMPANY_ID, email -> EMAIL[0].VALUE, phone ->
  PHONE[0].VALUE, job_title -> POST.
- deals: deal_name -> TITLE, account -> COMPANY_ID, owner -> ASSIGNED_BY_ID, pipeline ->
  CATEGORY_ID, stage -> STAGE_ID, amount -> OPPORTUNITY, currency -> CURRENCY_ID, status ->
  STAGE_SEMANTIC_ID (P open, S won, F lost) and CLOSED, expected_close_date -> CLOSEDATE,
  closed_at -> UF_CRM_CLOSED_AT, lost_reason -> UF_CRM_LOST_REASON, lead_source -> SOURCE_ID.
  DATE_MODIFY is the later of the deal's change and its contact links' change (Bitrix24 touches a
  deal when its contacts change).
- deal_contacts (`crm.deal.contact.items.get`): role -> ROLE_ID (1 decision_maker, 2 influencer,
  3 user, 4 other, 0 none).
- deal_stage_history (`crm.stagehistory.list`): one item per entry, CREATED_TIME = entered_at.
- activities (`crm.activity.list`): deal -> OWNER_TYPE_ID 2 / OWNER_ID, contact and account ->
  COMMUNICATIONS entries (ENTITY_TYPE_ID 3 and 4), owner -> RESPONSIBLE_ID, occurred_at ->
  START_TIME, updated_at -> LAST_UPDATED, channel -> TYPE_ID/PROVIDER_ID/PROVIDER_TYPE_ID
  (email 4 CRM_EMAIL, call 2 VOXIMPLANT_CALL, meeting 1 CRM_MEETING, social 6 IMOPENLINES_SESSION,
  webinar/event/other 6 REST_APP with PROVIDER_TYPE_ID WEBINAR/EVENT/OTHER).

What the real API cannot carry, and what the fake does instead:

- the deal-contact role: Bitrix24 documents ROLE_ID as a service field that portals answer 0; the
  fake carries the role in it (a real portal: unknown role). The link's own updated_at: none; a
  link's time is its deal's DATE_MODIFY.
- a stage's probability and canonical stage: crm.status has neither; only the semantics (process,
  success S, failure F). The canonical stage is a user-edited mapping of STATUS_ID (MAPPING.md).
  Bitrix24 has one success stage per funnel; the fake marks the drop's `closing` stages S and its
  `lost` stages F, and a deal's won/lost status is its own STAGE_SEMANTIC_ID, even in a
  post-sale stage that Bitrix24 would count as in process.
- a stage's updated_at: none (crm.status has no dates); a user's updated_at: none in user.get.
- the deletion of a record: Bitrix24 keeps no list of deleted records; a deleted record is gone
  from every list (find deletions by reconciling ids).
- names: full names stay whole in NAME (Bitrix24 splits NAME / SECOND_NAME / LAST_NAME).
- batch `$result[...]` references between commands are not supported.
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import io
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from b2b_pipeline.filedrop.discover import discover
from b2b_pipeline.sources.drop_records import well_formed
from b2b_pipeline.sources.fake_server import LocalServer

PAGE = 50
BATCH_LIMIT = 50
ORIGINATOR = "b2b-file-drop"  # ORIGINATOR_ID: the external system the records came from (their ORIGIN_ID)
ROLE_IDS = {"": 0, "decision_maker": 1, "influencer": 2, "user": 3, "other": 4}
CHANNELS = {  # channel -> (TYPE_ID, PROVIDER_ID, PROVIDER_TYPE_ID)
    "meeting": ("1", "CRM_MEETING", "MEETING"),
    "call": ("2", "VOXIMPLANT_CALL", "CALL"),
    "email": ("4", "CRM_EMAIL", "EMAIL"),
    "social": ("6", "IMOPENLINES_SESSION", "LINES"),
    "webinar": ("6", "REST_APP", "WEBINAR"),
    "event": ("6", "REST_APP", "EVENT"),
    "other": ("6", "REST_APP", "OTHER"),
}
KEYS = {  # drop entity -> key columns
    "users": ("user_id",),
    "accounts": ("account_id",),
    "contacts": ("contact_id",),
    "stages": ("stage_id",),
    "deals": ("deal_id",),
    "deal_contacts": ("deal_id", "contact_id"),
    "activities": ("activity_id",),
}
DATE_FIELDS = frozenset(
    {
        "DATE_CREATE",
        "DATE_MODIFY",
        "CREATED",
        "LAST_UPDATED",
        "START_TIME",
        "END_TIME",
        "DEADLINE",
        "CREATED_TIME",
        "MOVED_TIME",
        "BEGINDATE",
        "CLOSEDATE",
        "DATE_REGISTER",
        "UF_CRM_CLOSED_AT",
    }
)
MULTI_FIELDS = frozenset({"EMAIL", "PHONE", "WEB", "IM", "COMMUNICATIONS"})
FILTER_OPS = ("!=%", "!%=", ">=", "<=", "!=", "!@", "=%", "%=", "!%", ">", "<", "@", "!", "=", "%")
ERRORS = {
    "500": (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    "503": (503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
    "operating": (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
}


class ApiError(Exception):
    """An answer of the REST API that is an error: HTTP status and the documented error body."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status, self.code, self.description = status, code, description

    def body(self) -> dict:
        return {"error": self.code, "error_description": self.description}


def parse_instant(text: str, default_tz: timezone = UTC) -> float:
    """Epoch seconds of an ISO 8601 timestamp (`Z`, `±hh:mm`, `±hhmm`; none means `default_tz`)."""
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=default_tz)
    return dt.timestamp()


def _offset(text: str) -> timezone:
    sign = -1 if text.startswith("-") else 1
    hours, minutes = text.lstrip("+-").split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def php_params(pairs: Iterable[tuple[str, str]]) -> dict:
    """Form or query parameters in PHP's bracket style (`filter[>ID]=5`, `select[]=ID`) as nested
    dicts and lists, as Bitrix24 reads them."""
    root: dict = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


@dataclass
class _Fault:
    kind: str
    count: int
    after: int = 0
    seconds: float = 5.0


@dataclass
class Call:
    """One method call the fake answered (batch commands are logged too, `via_batch`)."""

    method: str
    params: dict
    status: int
    via_batch: bool = False


@dataclass
class _Store:
    """Every version of every record of the drop (and of admin changes), by entity and key."""

    versions: dict[str, dict[tuple, list[tuple[float, dict]]]] = field(default_factory=dict)
    history: list[tuple[float, str, str]] = field(default_factory=list)  # (entered_at, deal_id, stage_id)
    _cache: dict[tuple[str, float], dict] = field(default_factory=dict)  # current() by (entity, now)
    revision: int = 0  # changes with every version added

    def add(self, entity: str, key: tuple, t: float, row: dict) -> None:
        rows = self.versions.setdefault(entity, {}).setdefault(key, [])
        times = [v[0] for v in rows]
        rows.insert(bisect.bisect_right(times, t), (t, row))
        self._cache.clear()
        self.revision += 1

    def current(self, entity: str, now: float) -> dict[tuple, tuple[float, dict]]:
        """Each record's latest version as of `now`; deleted records left out (do not change the answer)."""
        cached = self._cache.get((entity, now))
        if cached is not None:
            return cached
        out: dict[tuple, tuple[float, dict]] = {}
        for key, rows in self.versions.get(entity, {}).items():
            i = bisect.bisect_right([v[0] for v in rows], now)
            if i and not _truthy(rows[i - 1][1].get("is_deleted")):
                out[key] = rows[i - 1]
        self._cache[(entity, now)] = out
        return out

    def deleted(self, entity: str, key: tuple, now: float) -> bool:
        """Whether the record's latest version as of `now` is a deletion."""
        rows = self.versions.get(entity, {}).get(key, [])
        i = bisect.bisect_right([v[0] for v in rows], now)
        return bool(i) and _truthy(rows[i - 1][1].get("is_deleted"))

    def first_time(self, entity: str, key: tuple) -> float:
        return self.versions[entity][key][0][0]


def _read_drop_file(path: Path, fmt: str, compressed: bool) -> Iterable[dict]:
    raw = path.read_bytes()
    if compressed:
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    if fmt == "jsonl":
        for line in text.splitlines():
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield {k: ("" if v is None else str(v)) for k, v in obj.items()}
        return
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    yield from csv.DictReader(io.StringIO(text), delimiter=delimiter)


class FakeBitrix24(LocalServer):
    """A Bitrix24 portal on 127.0.0.1 serving a file drop's CRM as of its clock (see the module doc).

    `now`: the portal's clock; given, it stands still until `set_now`/`advance` or
    `POST /_admin/clock` moves it; None follows the wall clock. `rate`/`burst`: the leaky bucket
    of the documented intensity limit (2 a second, 50 before blocking). `operating_limit`: seconds
    of method time over the window (`operating_window`, 10 minutes on a portal) before 429
    OPERATION_TIME_LIMIT; `operating_cost`: seconds each call adds (0: the real time taken).
    """

    def __init__(
        self,
        drop_dir: Path,
        *,
        webhook_user: int,
        webhook_secret: str,
        now: datetime | None = None,
        portal_offset: str = "+03:00",
        rate: float = 2.0,
        burst: int = 50,
        operating_limit: float = 480.0,
        operating_cost: float = 0.0,
        operating_window: float = 600.0,
    ) -> None:
        self.drop_dir = Path(drop_dir)
        self.webhook_user = int(webhook_user)
        self.webhook_secret = webhook_secret
        self.tz = _offset(portal_offset)
        self.rate, self.burst = rate, burst
        self.operating_limit, self.operating_cost = operating_limit, operating_cost
        self.operating_window = operating_window
        self._now: float | None = now.timestamp() if now is not None else None
        self._lock = threading.RLock()
        self._store = _Store()
        self._ids: dict[str, dict[tuple, int]] = {}
        self._by_id: dict[str, dict[int, tuple]] = {}
        self._pipelines: list[str] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._bucket = 0.0
        self._bucket_stamp = time.monotonic()
        self._operating: dict[str, list[tuple[float, float]]] = {}
        self.calls: list[Call] = []
        self._hooks: list[list[Any]] = []  # [method, n, callback, answered so far] (see `on_call`)
        self._render: dict[str, list[dict]] = {}
        self._render_key: dict[str, tuple] = {}
        self._load()

    # ---- seeding -------------------------------------------------------------------------------

    def _load(self) -> None:
        for f in discover(self.drop_dir).files:
            if f.system != "crm" or f.entity is None or f.fmt is None:
                continue
            name = f.entity.name
            for row in _read_drop_file(f.path, f.fmt, f.compressed):
                if not well_formed(f.entity, row):
                    continue  # a row the loader quarantines: the portal never had it
                try:
                    if name == "deal_stage_history":
                        self._store.history.append((parse_instant(row["entered_at"]), row["deal_id"], row["stage_id"]))
                        continue
                    key = tuple(row[k] for k in KEYS[name])
                    t = parse_instant(row["updated_at"])
                except (KeyError, ValueError, TypeError):
                    continue  # a malformed row of the drop: the loader quarantines it, the portal never had it
                if any(not k for k in key):
                    continue
                self._store.add(name, key, t, dict(row))
        self._store.history.sort()
        for rows in self._store.versions.get("stages", {}).values():  # funnels in the drop's order
            pipeline = rows[-1][1]["pipeline_id"]
            if pipeline not in self._pipelines:
                self._pipelines.append(pipeline)
        for name in ("users", "accounts", "contacts", "deals", "activities"):
            records = self._store.versions.get(name, {})
            created = {k: self._created(name, k) for k in records}
            for key in sorted(records, key=lambda k: (created[k], _natural(k))):
                self._assign(name, key)
        for key in sorted(self._store.versions.get("accounts", {}), key=lambda k: self._ids["accounts"][k]):
            if any(v[1].get("tax_id") for v in self._store.versions["accounts"][key]):
                self._assign("requisites", key)
        for i, _ in enumerate(self._store.history):
            self._assign("deal_stage_history", (str(i),))

    def _created(self, name: str, key: tuple) -> float:
        rows = self._store.versions[name][key]
        for _, row in rows:
            if row.get("created_at"):
                try:
                    return parse_instant(row["created_at"])
                except ValueError:
                    break
        return rows[0][0]

    def _assign(self, name: str, key: tuple) -> int:
        ids = self._ids.setdefault(name, {})
        if key not in ids:
            ids[key] = len(ids) + 1
            self._by_id.setdefault(name, {})[ids[key]] = key
        return ids[key]

    # ---- ids, clock, admin -----------------------------------------------------------------------

    def b24_id(self, entity: str, drop_id: str | tuple) -> int | str:
        """The Bitrix24 ID of a drop record (`entity`: users, accounts, contacts, deals, activities,
        requisites (by account id)); for stages, the STATUS_ID."""
        key = drop_id if isinstance(drop_id, tuple) else (str(drop_id),)
        if entity == "stages":
            return self._status_id(key[0])
        return self._ids[entity][key]

    def drop_id(self, entity: str, b24_id: int | str) -> str:
        """The drop id of a Bitrix24 record (the reverse of `b24_id`)."""
        if entity == "stages":
            return str(b24_id).split(":", 1)[-1]
        return self._by_id[entity][int(b24_id)][0]

    def now(self) -> float:
        """The portal's clock, epoch seconds (the wall clock in whole seconds, as the portal dates records)."""
        return self._now if self._now is not None else float(int(time.time()))

    def set_now(self, when: datetime) -> None:
        """Move the clock (records changed up to `when` become visible)."""
        with self._lock:
            self._now = when.timestamp()

    def fault(self, method: str, kind: str, *, count: int = 1, after: int = 0, seconds: float = 5.0) -> None:
        """The next `count` calls of `method` (`*`: any), after `after` good ones, answer: `500`, `503`
        (QUERY_LIMIT_EXCEEDED), `operating` (429 OPERATION_TIME_LIMIT), `timeout` (hang `seconds`
        before answering) or `malformed` (a truncated JSON body)."""
        if kind not in (*ERRORS, "timeout", "malformed"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._faults.setdefault(method, []).append(_Fault(kind, count, after, seconds))

    def on_call(self, method: str, n: int, callback: Callable[[FakeBitrix24], None]) -> None:
        """Run `callback(fake)` once, when the `n`-th answered call of `method` (1 = the first; errors and
        faults not counted, batch commands neither) has been computed and before it is sent: a change
        made while a client is paging (that page shows the state before it, the next one after)."""
        if n < 1:
            raise ValueError("n counts from 1")
        with self._lock:
            self._hooks.append([method.lower(), n, callback, 0])

    def _run_hooks(self, method: str) -> None:
        due = []
        with self._lock:
            for hook in self._hooks:
                if hook[0] == method:
                    hook[3] += 1
                    if hook[3] == hook[1]:
                        due.append(hook[2])
        for callback in due:
            callback(self)

    def change(self, entity: str, op: str, drop_id: str | tuple | None = None, fields: dict | None = None) -> int | str:
        """Change a record now, in drop terms: `op` update (fields merged into the current version),
        delete (a deletable entity) or create (`fields` a whole drop row). Returns its Bitrix24 id.
        A deal's stage change adds a stage-history entry, as Bitrix24 does."""
        fields = {k: str(v) for k, v in (fields or {}).items()}
        with self._lock:
            now = self.now()
            if entity == "deal_stage_history":
                self._store.history.append((now, fields["deal_id"], fields["stage_id"]))
                return self._assign("deal_stage_history", (str(len(self._store.history) - 1),))
            keys = KEYS[entity]
            if op == "create":
                key = tuple(fields[k] for k in keys)
                row = dict(fields)
            else:
                key = drop_id if isinstance(drop_id, tuple) else (str(drop_id),)
                current = self._store.current(entity, now).get(key)
                if current is None:
                    raise KeyError(f"{entity} {key} does not exist now")
                row = dict(current[1])
                if op == "delete":
                    row["is_deleted"] = "true"
                elif op == "update":
                    if entity == "deals" and "stage_id" in fields and fields["stage_id"] != row.get("stage_id"):
                        self._store.history.append((now, key[0], fields["stage_id"]))
                        self._assign("deal_stage_history", (str(len(self._store.history) - 1),))
                    row.update(fields)
                else:
                    raise ValueError(f"unknown op {op!r}")
            row["updated_at"] = datetime.fromtimestamp(now, UTC).isoformat()
            self._store.add(entity, key, now, row)
            b24 = self._assign(entity, key) if entity in ("users", "accounts", "contacts", "deals", "activities") else 0
            if entity == "accounts" and row.get("tax_id"):
                self._assign("requisites", key)
            return b24

    # ---- server ----------------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        """The inbound webhook URL (it holds the secret: a credential)."""
        return f"{self.base_url}/rest/{self.webhook_user}/{self.webhook_secret}/"

    def start(self) -> FakeBitrix24:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake._handle(self, self.rfile.read(length) if length else b"")

        return self.serve(Handler, "fake-bitrix24")

    # ---- HTTP ------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        url = urllib.parse.urlsplit(h.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if parts[:1] == ["_admin"] and h.command == "POST":
                self._send(h, 200, self._admin(parts[1] if len(parts) > 1 else "", json.loads(body or b"{}")))
                return
            if len(parts) != 4 or parts[0] != "rest":
                raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            user, secret, method = parts[1], parts[2], parts[3]
            if user != str(self.webhook_user) or secret != self.webhook_secret:
                raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
            method = method.removesuffix(".json").lower()
            params = php_params(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            if body:
                ctype = h.headers.get("Content-Type") or ""
                if "json" in ctype:
                    extra = json.loads(body)
                    if not isinstance(extra, dict):
                        raise ApiError(400, "INVALID_REQUEST", "Request body must be an object")
                else:
                    extra = php_params(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                params.update(extra)
            self._limit()
            fault = self._take_fault(method)
            if fault is not None and fault.kind in ERRORS:
                raise ApiError(*ERRORS[fault.kind])
            if fault is not None and fault.kind == "timeout":
                time.sleep(fault.seconds)
            answer = self._call(method, params, via_batch=False)
            self._run_hooks(method)
            if fault is not None and fault.kind == "malformed":
                data = json.dumps(answer, ensure_ascii=False).encode()
                self._send_bytes(h, 200, data[: max(1, len(data) // 2)])
                return
            self._send(h, 200, answer)
        except ApiError as e:
            if len(parts) == 4 and e.status != 401:
                self._log(parts[3].removesuffix(".json").lower(), {}, e.status)
            # no Retry-After: limits.md documents none (back off with growing delays; for 429
            # OPERATION_TIME_LIMIT wait for `time.operating_reset_at` of the last good answer)
            self._send(h, e.status, e.body())
        except (ValueError, KeyError, TypeError) as e:
            self._send(h, 400, {"error": "INVALID_REQUEST", "error_description": f"Invalid request: {e}"})

    def _send(self, h: BaseHTTPRequestHandler, status: int, obj: Any, headers: dict | None = None) -> None:
        self._send_bytes(h, status, json.dumps(obj, ensure_ascii=False).encode(), headers)

    def _send_bytes(self, h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout fault)

    def _admin(self, what: str, body: dict) -> dict:
        if what == "clock":
            if "now" in body:
                self.set_now(datetime.fromisoformat(body["now"]))
            elif "advance_seconds" in body:
                self.set_now(datetime.fromtimestamp(self.now() + float(body["advance_seconds"]), UTC))
            return {"result": {"now": self._iso(self.now())}}
        if what == "fault":
            self.fault(
                body["method"],
                str(body["kind"]),
                count=int(body.get("count", 1)),
                after=int(body.get("after", 0)),
                seconds=float(body.get("seconds", 5.0)),
            )
            return {"result": True}
        if what == "records":
            key = body.get("id")
            key = tuple(key) if isinstance(key, list) else key
            return {"result": {"ID": self.change(body["entity"], body["op"], key, body.get("fields"))}}
        raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")

    def _limit(self) -> None:
        """The documented leaky bucket: each request adds 1, `rate` leak a second; past `burst`, 503."""
        with self._lock:
            stamp = time.monotonic()
            self._bucket = max(0.0, self._bucket - (stamp - self._bucket_stamp) * self.rate)
            self._bucket_stamp = stamp
            if self._bucket + 1 > self.burst:
                raise ApiError(*ERRORS["503"])
            self._bucket += 1

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for name in (method, "*"):
                for f in self._faults.get(name, []):
                    if f.after > 0:
                        f.after -= 1
                        continue
                    f.count -= 1
                    if f.count <= 0:
                        self._faults[name].remove(f)
                    return f
        return None

    def _log(self, method: str, params: dict, status: int, via_batch: bool = False) -> None:
        with self._lock:
            self.calls.append(Call(method, params, status, via_batch))

    def calls_of(self, method: str) -> list[Call]:
        """The calls of `method` answered so far (batch commands included)."""
        return [c for c in self.calls if c.method == method]

    # ---- methods ---------------------------------------------------------------------------------

    def _call(self, method: str, params: dict, *, via_batch: bool) -> dict:
        params = {k.lower() if k.lower() in ("filter", "select", "order", "start") else k: v for k, v in params.items()}
        handlers: dict[str, Callable[[dict], tuple[Any, int | None, int | None]]] = {
            "crm.deal.list": lambda p: self._list(p, self._rendered("deals", self._deals)),
            "crm.company.list": lambda p: self._list(p, self._rendered("companies", self._companies)),
            "crm.contact.list": lambda p: self._list(p, self._rendered("contacts", self._contacts)),
            "crm.requisite.list": lambda p: self._list(p, self._rendered("requisites", self._requisites)),
            "crm.activity.list": lambda p: self._list(p, self._rendered("activities", self._activities)),
            "crm.status.list": lambda p: self._list(
                p, self._rendered("statuses", self._statuses), default_order="SORT", select_all=True
            ),
            "crm.deal.contact.items.get": self._deal_contacts,
            "crm.category.list": self._categories,
            "crm.stagehistory.list": self._stage_history,
            "user.get": self._users,
        }
        began = time.perf_counter()
        if method == "batch":
            if via_batch:
                raise ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
            return self._batch(params)
        handler = handlers.get(method)
        if handler is None:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        self._operating_check(method)
        with self._lock:
            now = self.now()
            result, total, nxt = handler(params)
        cost = self.operating_cost + (time.perf_counter() - began)
        operating, reset_in = self._operating_add(method, cost)
        self._log(method, params, 200, via_batch)
        answer: dict[str, Any] = {"result": result}
        if nxt is not None:
            answer["next"] = nxt
        if total is not None:
            answer["total"] = total
        answer["time"] = self._time(now, began, operating, reset_in)
        return answer

    def _rendered(self, name: str, render: Callable[[], list[dict]]) -> list[dict]:
        """The records of a list method as of the clock, rendered once per clock and state."""
        key = (name, self.now(), self._store.revision, len(self._store.history))
        if self._render_key.get(name) != key:
            self._render[name] = render()
            self._render_key[name] = key
        return self._render[name]

    def _time(self, now: float, began: float, operating: float | None = None, reset_in: float | None = None) -> dict:
        duration = time.perf_counter() - began
        block: dict[str, Any] = {
            "start": now,
            "finish": now + duration,
            "duration": duration,
            "processing": duration,
            "date_start": self._iso(now),
            "date_finish": self._iso(now + duration),
        }
        if operating is not None:
            # in the portal's clock, as `start` and `finish` are
            block["operating_reset_at"] = int(now + (self.operating_window if reset_in is None else reset_in))
            block["operating"] = operating
        return block

    def _operating_check(self, method: str) -> tuple[float, float]:
        """The method's operating time in the window so far and the seconds until the window resets;
        429 OPERATION_TIME_LIMIT when it is used up."""
        with self._lock:
            stamp = time.monotonic()
            spent = [(t, c) for t, c in self._operating.get(method, []) if stamp - t < self.operating_window]
            self._operating[method] = spent
            total = sum(c for _, c in spent)
            if total > self.operating_limit:
                raise ApiError(*ERRORS["operating"])
            return total, self.operating_window

    def _operating_add(self, method: str, cost: float) -> tuple[float, float]:
        with self._lock:
            stamp = time.monotonic()
            spent = self._operating.setdefault(method, [])
            spent.append((stamp, cost))
            oldest = spent[0][0]
            return sum(c for _, c in spent), self.operating_window - (stamp - oldest)

    def _batch(self, params: dict) -> dict:
        began = time.perf_counter()
        cmd = params.get("cmd") or {}
        if isinstance(cmd, list):
            cmd = {str(i): c for i, c in enumerate(cmd)}
        if len(cmd) > BATCH_LIMIT:
            raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", "0")) not in ("0", "", "false")
        out: dict[str, dict] = {k: {} for k in ("result", "result_error", "result_total", "result_next", "result_time")}
        for key, command in cmd.items():
            name, _, query = str(command).partition("?")
            sub = php_params(urllib.parse.parse_qsl(query, keep_blank_values=True))
            try:
                answer = self._call(name.strip().lower(), sub, via_batch=True)
            except ApiError as e:
                out["result_error"][key] = e.body()
                if halt:
                    break
                continue
            out["result"][key] = answer["result"]
            out["result_time"][key] = answer["time"]
            if "total" in answer:
                out["result_total"][key] = answer["total"]
            if "next" in answer:
                out["result_next"][key] = answer["next"]
        self._log("batch", params, 200)
        result = {k: (v if v else []) for k, v in out.items()}  # PHP: an empty array is []
        return {"result": result, "time": self._time(self.now(), began)}

    def _list(
        self, params: dict, rows: list[dict], *, default_order: str = "ID", select_all: bool = False
    ) -> tuple[list[dict], int, int | None]:
        flt = params.get("filter") or {}
        if not isinstance(flt, dict):
            raise ApiError(400, "", "Parameter 'filter' must be array.")
        order = params.get("order") or {default_order: "ASC"}
        if not isinstance(order, dict):
            raise ApiError(400, "", "Parameter 'order' must be array")
        tests = _compile(flt)
        rows = [r for r in rows if all(t(r) for t in tests)]
        for fld, direction in reversed(list(order.items())):
            rows.sort(key=lambda r, f=fld: _sort_key(f, r.get(f)), reverse=str(direction).upper() == "DESC")
        select = params.get("select")
        if isinstance(select, str):
            select = [select]
        start = int(params.get("start") or 0)
        if start == -1:  # no count: api-reference/performance/huge-data.md
            page, total, nxt = rows[:PAGE], 0, None
        else:
            page = rows[start : start + PAGE]
            total = len(rows)
            nxt = start + PAGE if start + PAGE < total else None
        return [_select(r, select, select_all) for r in page], total, nxt

    def _deal_contacts(self, params: dict) -> tuple[list[dict], None, None]:
        try:
            deal_id = int(params.get("id") or params.get("ID") or 0)
        except ValueError:
            deal_id = 0
        if deal_id < 1:
            raise ApiError(400, "", "The parameter ownerEntityID is invalid or not defined.")
        now = self.now()
        key = self._by_id.get("deals", {}).get(deal_id)
        if key is None or key not in self._store.current("deals", now):
            raise ApiError(400, "", "Not found.")
        contacts = self._store.current("contacts", now)
        links = [
            (self._store.first_time("deal_contacts", k), self._ids["contacts"][(k[1],)], v[1])
            for k, v in self._store.current("deal_contacts", now).items()
            if k[0] == key[0] and (k[1],) in contacts
        ]
        links.sort(key=lambda x: (x[0], x[1]))
        return (
            [
                {
                    "CONTACT_ID": cid,
                    "SORT": (i + 1) * 100,
                    "ROLE_ID": ROLE_IDS.get(row.get("role", ""), 4),
                    "IS_PRIMARY": "Y" if i == 0 else "N",
                }
                for i, (_, cid, row) in enumerate(links)
            ],
            None,
            None,
        )

    def _categories(self, params: dict) -> tuple[dict, int, None]:
        if str(params.get("entityTypeId", "")) != "2":
            raise ApiError(400, "NOT_FOUND", "Smart process not found")
        cats: list[dict[str, Any]] = []
        for i, name in enumerate(self._pipelines):
            cat: dict[str, Any] = {"id": i, "name": name, "sort": (i + 1) * 100, "entityTypeId": 2}
            cat.update({"isDefault": "Y"} if i == 0 else {"isDefault": "N", "originId": "", "originatorId": ""})
            cats.append(cat)
        return {"categories": cats}, len(cats), None

    def _stage_history(self, params: dict) -> tuple[dict, int, int | None]:
        if str(params.get("entityTypeId", "")) != "2":
            entity_type = params.get("entityTypeId")
            raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {entity_type} is not supported")
        items, total, nxt = self._list(params, self._rendered("stage_history", self._history_rows))
        return {"items": items}, total, nxt

    def _history_rows(self) -> list[dict]:
        now = self.now()
        deals = self._store.current("deals", now)
        stages = self._store.current("stages", now)
        seen: set[str] = set()
        rows = []
        for i, (t, deal, stage) in enumerate(self._store.history):
            if t > now:
                continue
            first = deal not in seen
            seen.add(deal)
            if (deal,) not in deals and self._store.deleted("deals", (deal,), now):
                # Bitrix24 drops the history of a deleted deal. A deal whose first version in the drop
                # is later than its history still existed then (the drop only knows its later state):
                # its entries are served, as the portal would have
                continue
            srow = stages.get((stage,), (0, {}))[1]
            semantic = _semantic(srow)
            rows.append(
                {
                    "ID": self._ids["deal_stage_history"][(str(i),)],
                    "TYPE_ID": 1 if first else (3 if semantic in ("S", "F") else 2),
                    "OWNER_ID": self._ids["deals"][(deal,)],
                    "CREATED_TIME": self._iso(t),
                    "CATEGORY_ID": self._category(srow.get("pipeline_id", "")),
                    "STAGE_SEMANTIC_ID": semantic,
                    "STAGE_ID": self._status_id(stage),
                }
            )
        return rows

    def _users(self, params: dict) -> tuple[list[dict], int, int | None]:
        flt = {k: v for k, v in (params.get("filter") or params.get("FILTER") or {}).items()}
        for k in ("ACTIVE", "ID"):
            if k in params:
                flt[k] = params[k]
        order = params.get("order") or params.get("ORDER") or "ASC"
        sort = params.get("sort") or params.get("SORT") or "ID"
        p = {"filter": flt, "order": {str(sort).upper(): str(order).upper()}, "start": params.get("start")}
        return self._list(p, self._user_rows(), select_all=True)

    # ---- renderings ------------------------------------------------------------------------------

    def _iso(self, t: float) -> str:
        return datetime.fromtimestamp(t, self.tz).isoformat(timespec="seconds")

    def _status_id(self, stage_id: str) -> str:
        rows = self._store.versions.get("stages", {}).get((stage_id,))
        pipeline = rows[-1][1].get("pipeline_id", "") if rows else ""
        n = self._category(pipeline)
        return stage_id if n == 0 else f"C{n}:{stage_id}"

    def _category(self, pipeline: str) -> int:
        return self._pipelines.index(pipeline) if pipeline in self._pipelines else 0

    def _uid(self, drop_user: str) -> str:
        uid = self._ids.get("users", {}).get((drop_user,))
        return str(uid) if uid is not None else ""

    def _ref(self, entity: str, drop_id: str) -> str:
        ref = self._ids.get(entity, {}).get((drop_id,)) if drop_id else None
        return str(ref) if ref is not None else ""

    def _opt_iso(self, text: str | None) -> str:
        if not text:
            return ""
        try:
            return self._iso(parse_instant(text))
        except ValueError:
            return ""

    def _user_rows(self) -> list[dict]:
        out = []
        for key, (_, row) in self._store.current("users", self.now()).items():
            out.append(
                {
                    "ID": str(self._ids["users"][key]),
                    "XML_ID": key[0],
                    "ACTIVE": _truthy(row.get("is_active")),
                    "NAME": row.get("full_name", ""),
                    "LAST_NAME": "",
                    "SECOND_NAME": "",
                    "EMAIL": row.get("email", ""),
                    "DATE_REGISTER": self._iso(self._store.first_time("users", key)),
                    "WORK_DEPARTMENT": row.get("team", ""),
                    "WORK_POSITION": "",
                    "UF_DEPARTMENT": [1],
                    "USER_TYPE": "employee",
                }
            )
        return out

    def _companies(self) -> list[dict]:
        out = []
        for key, (t, row) in self._store.current("accounts", self.now()).items():
            domain = row.get("domain", "")
            out.append(
                {
                    "ID": str(self._ids["accounts"][key]),
                    "ORIGINATOR_ID": ORIGINATOR,
                    "ORIGIN_ID": key[0],
                    "TITLE": row.get("name", ""),
                    "COMPANY_TYPE": "CUSTOMER",
                    "INDUSTRY": "OTHER",
                    "ASSIGNED_BY_ID": self._uid(row.get("owner_id", "")),
                    "CREATED_BY_ID": self._uid(row.get("owner_id", "")),
                    "DATE_CREATE": self._opt_iso(row.get("created_at")) or self._iso(t),
                    "DATE_MODIFY": self._iso(t),
                    "OPENED": "Y",
                    "HAS_EMAIL": "N",
                    "HAS_PHONE": "N",
                    "WEB": [
                        {"ID": str(self._ids["accounts"][key]), "VALUE_TYPE": "WORK", "VALUE": domain, "TYPE_ID": "WEB"}
                    ]
                    if domain
                    else [],
                    "UF_CRM_INDUSTRY": row.get("industry", ""),
                    "UF_CRM_COUNTRY": row.get("country", ""),
                    "UF_CRM_EMPLOYEE_COUNT": row.get("employee_count", ""),
                }
            )
        return out

    def _requisites(self) -> list[dict]:
        now = self.now()
        out = []
        for key, (_, row) in self._store.current("accounts", now).items():
            rid = self._ids.get("requisites", {}).get(key)
            if rid is None:
                continue
            versions = [v for v in self._store.versions["accounts"][key] if v[0] <= now]
            with_tax = [v for v in versions if v[1].get("tax_id")]
            if not with_tax:
                continue
            changed, created, last = with_tax[0][0], with_tax[0][0], None
            for t, v in versions:
                if v.get("tax_id", "") != last and (last is not None or v.get("tax_id")):
                    changed = t
                last = v.get("tax_id", "")
            out.append(
                {
                    "ID": str(rid),
                    "ENTITY_TYPE_ID": "4",
                    "ENTITY_ID": str(self._ids["accounts"][key]),
                    "PRESET_ID": "1",
                    "NAME": row.get("name", ""),
                    "ACTIVE": "Y",
                    "DATE_CREATE": self._iso(created),
                    "DATE_MODIFY": self._iso(changed),
                    "RQ_COMPANY_NAME": row.get("name", ""),
                    "RQ_INN": row.get("tax_id", ""),
                }
            )
        return out

    def _contacts(self) -> list[dict]:
        out = []
        for key, (t, row) in self._store.current("contacts", self.now()).items():
            cid = str(self._ids["contacts"][key])
            email, phone = row.get("email", ""), row.get("phone", "")
            out.append(
                {
                    "ID": cid,
                    "ORIGINATOR_ID": ORIGINATOR,
                    "ORIGIN_ID": key[0],
                    "NAME": row.get("full_name", ""),
                    "SECOND_NAME": "",
                    "LAST_NAME": "",
                    "POST": row.get("job_title", ""),
                    "COMPANY_ID": self._ref("accounts", row.get("account_id", "")),
                    "ASSIGNED_BY_ID": "",
                    "DATE_CREATE": self._opt_iso(row.get("created_at")) or self._iso(t),
                    "DATE_MODIFY": self._iso(t),
                    "HAS_EMAIL": "Y" if email else "N",
                    "HAS_PHONE": "Y" if phone else "N",
                    "EMAIL": [{"ID": cid, "VALUE_TYPE": "WORK", "VALUE": email, "TYPE_ID": "EMAIL"}] if email else [],
                    "PHONE": [{"ID": cid, "VALUE_TYPE": "WORK", "VALUE": phone, "TYPE_ID": "PHONE"}] if phone else [],
                }
            )
        return out

    def _deals(self) -> list[dict]:
        now = self.now()
        touched: dict[str, float] = {}
        for key, (t, _) in self._store.current("deal_contacts", now).items():
            touched[key[0]] = max(t, touched.get(key[0], 0.0))
        out = []
        for key, (t, row) in self._store.current("deals", now).items():
            status = row.get("status", "open")
            modified = max(t, touched.get(key[0], 0.0))
            close = row.get("expected_close_date", "")
            out.append(
                {
                    "ID": str(self._ids["deals"][key]),
                    "ORIGINATOR_ID": ORIGINATOR,
                    "ORIGIN_ID": key[0],
                    "TITLE": row.get("deal_name", ""),
                    "TYPE_ID": "SALE",
                    "CATEGORY_ID": str(self._category(row.get("pipeline_id", ""))),
                    "STAGE_ID": self._status_id(row.get("stage_id", "")),
                    "STAGE_SEMANTIC_ID": {"won": "S", "lost": "F"}.get(status, "P"),
                    "IS_NEW": "N",
                    "CURRENCY_ID": row.get("currency", ""),
                    "OPPORTUNITY": _money(row.get("amount", "")),
                    "IS_MANUAL_OPPORTUNITY": "Y",
                    "COMPANY_ID": self._ref("accounts", row.get("account_id", "")),
                    "CONTACT_ID": "",
                    "ASSIGNED_BY_ID": self._uid(row.get("owner_id", "")),
                    "CREATED_BY_ID": self._uid(row.get("owner_id", "")),
                    "BEGINDATE": self._opt_iso(row.get("created_at")),
                    "CLOSEDATE": self._iso(
                        datetime.combine(date.fromisoformat(close), datetime.min.time(), self.tz).timestamp()
                    )
                    if close
                    else "",
                    "CLOSED": "Y" if status in ("won", "lost") else "N",
                    "DATE_CREATE": self._opt_iso(row.get("created_at")) or self._iso(t),
                    "DATE_MODIFY": self._iso(modified),
                    "SOURCE_ID": row.get("lead_source", ""),
                    "OPENED": "Y",
                    "UF_CRM_CLOSED_AT": self._opt_iso(row.get("closed_at")),
                    "UF_CRM_LOST_REASON": row.get("lost_reason", ""),
                }
            )
        return out

    def _statuses(self) -> list[dict]:
        out = []
        for key, (_, row) in self._store.current("stages", self.now()).items():
            n = self._category(row.get("pipeline_id", ""))
            semantic = _semantic(row)
            color = {"S": "#7BD500", "F": "#FF5752"}.get(semantic, "#39A8EF")
            try:
                sort = str(int(row.get("display_order") or 0) * 10)
            except ValueError:
                sort = "0"
            out.append(
                {
                    "ID": str(self._ids.setdefault("statuses", {}).setdefault(key, len(self._ids["statuses"]) + 1)),
                    "ENTITY_ID": "DEAL_STAGE" if n == 0 else f"DEAL_STAGE_{n}",
                    "STATUS_ID": self._status_id(key[0]),
                    "NAME": row.get("stage_name", ""),
                    "NAME_INIT": "",
                    "SORT": sort,
                    "SYSTEM": "N",
                    "CATEGORY_ID": None if n == 0 else str(n),
                    "COLOR": color,
                    "SEMANTICS": semantic if semantic != "P" else None,
                    "EXTRA": {"SEMANTICS": {"S": "success", "F": "failure"}.get(semantic, "process"), "COLOR": color},
                }
            )
        return out

    def _activities(self) -> list[dict]:
        out = []
        for key, (t, row) in self._store.current("activities", self.now()).items():
            aid = str(self._ids["activities"][key])
            type_id, provider, provider_type = CHANNELS.get(row.get("channel", ""), CHANNELS["other"])
            deal, contact, account = row.get("deal_id", ""), row.get("contact_id", ""), row.get("account_id", "")
            if deal and self._ref("deals", deal):
                owner_type, owner = "2", self._ref("deals", deal)
            elif contact and self._ref("contacts", contact):
                owner_type, owner = "3", self._ref("contacts", contact)
            else:
                owner_type, owner = "4", self._ref("accounts", account)
            comms = []
            if contact and self._ref("contacts", contact):
                comms.append(
                    {
                        "ID": aid,
                        "ORIGINATOR_ID": ORIGINATOR,
                        "ORIGIN_ID": key[0],
                        "TYPE": "",
                        "VALUE": "",
                        "ENTITY_ID": self._ref("contacts", contact),
                        "ENTITY_TYPE_ID": "3",
                    }
                )
            if account and self._ref("accounts", account):
                comms.append(
                    {
                        "ID": aid,
                        "TYPE": "",
                        "VALUE": "",
                        "ENTITY_ID": self._ref("accounts", account),
                        "ENTITY_TYPE_ID": "4",
                    }
                )
            occurred = self._opt_iso(row.get("occurred_at"))
            out.append(
                {
                    "ID": aid,
                    "OWNER_ID": owner,
                    "OWNER_TYPE_ID": owner_type,
                    "TYPE_ID": type_id,
                    "PROVIDER_ID": provider,
                    "PROVIDER_TYPE_ID": provider_type,
                    "SUBJECT": row.get("channel", ""),
                    "COMPLETED": "Y",
                    "START_TIME": occurred,
                    "END_TIME": occurred,
                    "DEADLINE": occurred,
                    "RESPONSIBLE_ID": self._uid(row.get("owner_id", "")),
                    "AUTHOR_ID": self._uid(row.get("owner_id", "")),
                    "CREATED": self._iso(self._store.first_time("activities", key)),
                    "LAST_UPDATED": self._iso(t),
                    "DIRECTION": "0",
                    "COMMUNICATIONS": comms,
                }
            )
        return out


def _semantic(stage_row: dict) -> str:
    canonical = stage_row.get("canonical_stage", "")
    return "F" if canonical == "lost" else ("S" if canonical == "closing" else "P")


def _money(text: str) -> str:
    try:
        return str(Decimal(text.replace(",", ".")).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError):
        return "0.00"


def _natural(key: tuple) -> tuple:
    return tuple((0, int(k), "") if k.isdigit() else (1, 0, k) for k in key)


@functools.lru_cache(maxsize=262144)
def _instant_of(text: str) -> float:
    """`parse_instant`, remembered: lists filter and sort by the same timestamps page after page."""
    return parse_instant(text)


def _sort_key(fld: str, value: Any) -> tuple:
    if value is None or value == "":
        return (0, 0.0, "")
    if fld in DATE_FIELDS:
        try:
            return (1, _instant_of(str(value)), "")
        except ValueError:
            pass
    try:
        return (1, float(value), "")
    except (TypeError, ValueError):
        return (2, 0.0, str(value))


def _compare_value(fld: str, value: Any) -> Any:
    if fld in DATE_FIELDS:
        try:
            return _instant_of(str(value))
        except ValueError:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _compile(flt: dict) -> list[Callable[[dict], bool]]:
    """The filter's conditions as tests of a row (prefixes `>=`, `>`, `<=`, `<`, `@`, `!@`, `%`,
    `=`, `!=`, `!`), each value read once."""
    tests: list[Callable[[dict], bool]] = []
    for raw_key, want in flt.items():
        op = next((o for o in FILTER_OPS if raw_key.startswith(o)), "=")
        fld = raw_key[len(op) :] if raw_key.startswith(op) else raw_key
        if op in ("@", "!@") and fld == "ID":  # ids: a set, so that a check of 50 ids stays one pass
            ids = {str(v) for v in (want if isinstance(want, list) else [want])}
            tests.append(lambda r, f=fld, vs=ids, o=op: (str(r.get(f)) in vs) == (o == "@"))
        elif op in ("@", "!@"):
            values = want if isinstance(want, list) else [want]
            tests.append(lambda r, f=fld, vs=values, o=op: any(_eq(f, r.get(f), v) for v in vs) == (o == "@"))
        elif "%" in op:
            needle = str(want).replace("%", "").lower()
            tests.append(lambda r, f=fld, n=needle, o=op: (n in str(r.get(f) or "").lower()) != o.startswith("!"))
        elif op in ("=", "!=", "!"):
            tests.append(lambda r, f=fld, w=want, o=op: _eq(f, r.get(f), w) == (o == "="))
        else:
            b = _compare_value(fld, want)
            compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[op]
            if not isinstance(b, float):
                compare = {">": str.__gt__, ">=": str.__ge__, "<": str.__lt__, "<=": str.__le__}[op]

            def test(r: dict, f: str = fld, b: Any = b, compare: Any = compare) -> bool:
                a = _compare_value(f, r.get(f))
                return a is not None and type(a) is type(b) and compare(a, b)

            tests.append(test)
    return tests


def _eq(fld: str, have: Any, want: Any) -> bool:
    if isinstance(have, bool):
        return have == (str(want).upper() in ("Y", "TRUE", "1"))
    return _compare_value(fld, have) == _compare_value(fld, want)


def _select(row: dict, select: list | None, select_all: bool) -> dict:
    """The fields `select` asks for: `*` every plain field, `UF_*` every custom field, multi-fields
    (EMAIL, PHONE, WEB, COMMUNICATIONS) only by name; nothing asked: `*` and `UF_*`."""
    if select_all and not select:
        return dict(row)
    wanted = [str(s) for s in (select or ["*", "UF_*"])]
    out = {}
    for k, v in row.items():
        plain = not k.startswith("UF_") and k not in MULTI_FIELDS
        if k in wanted or ("*" in wanted and plain) or ("UF_*" in wanted and k.startswith("UF_")):
            out[k] = v
    if "ID" in row and "ID" not in out and wanted:
        out = {"ID": row["ID"], **out} if "ID" in wanted else out
    return out


__all__ = ["ApiError", "Call", "FakeBitrix24", "parse_instant", "php_params"]
