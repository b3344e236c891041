"""The Bitrix24 connector: a dlt source that lands a portal's CRM in `raw_bitrix24` (see landing.py).

It reads the REST API through an inbound webhook (`https://<portal>/rest/<user id>/<secret>/`; the
URL holds the secret, so it is a credential: it never appears in a log line or an error, where
the connection is named by its portal and user with the secret replaced by `***`).

Streams (raw tables) and how each is read (documented in b24-rest-docs, see fake.py's table):

| stream | method | how |
|---|---|---|
| users | user.get | whole list each night, paging by `start`/`next` |
| deal_categories, deal_stages | crm.category.list, crm.status.list | whole lists each night |
| companies, requisites, contacts, deals, activities | crm.*.list | on DATE_MODIFY (activities: LAST_UPDATED) |
| deal_contacts | crm.deal.contact.items.get in `batch` (50 a call) | the links of every deal read tonight |
| stage_history | crm.stagehistory.list | incremental on ID |

Incremental streams ask for `>=` the cursor minus the lookback window, ordered by (modified, ID),
and page by keys rather than offsets (`start=-1`, no count: api-reference/performance/huge-data.md):
after a full page they continue `>` its last timestamp, after first draining the rows of that very
timestamp by `>ID` (so equal timestamps across a page boundary lose nothing and offsets cannot
shift under concurrent changes). Records changed after the stream's first answer (the portal's
`time.start`) wait for the next night: the cursor never passes the moment the extraction started.

Bitrix24 keeps no list of deleted records, so every deletable stream ends with a cheap check of
the ids known to be live and not read tonight (`Bitrix24Client.existing`: `batch` calls of 50
commands, each asking for 50 ids by `@ID`, `select: [ID]`, `start=-1`: 2,500 ids a request) and
lands an `is_deleted` version for each one the portal no longer has. The ids known to be live are
kept, as ranges, in the stream's dlt state, which is committed with the rows it describes.

Rate: a client-side token bucket (`requests_per_second`, `burst`) below the documented limit
(2 a second, 50 before blocking); 503 QUERY_LIMIT_EXCEEDED, 5xx and timeouts are retried with
exponential backoff honouring `Retry-After` (landing.api_session); a malformed (unparseable)
answer is retried as well. 429 OPERATION_TIME_LIMIT (a method's operating time used up for the
portal's 10-minute window) is waited out until the `operating_reset_at` of that method's last good
answer, at most `max_operating_wait`.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
import requests

from b2b_pipeline.sources.landing import RequestCounter, SourceRefused, api_session, raw_resource, version_row

log = logging.getLogger(__name__)

PAGE = 50
BATCH = 50
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# loggers that may write a request's URL (urllib3 writes the path at DEBUG): the secret is masked in them
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "dlt", "b2b_pipeline", __name__)


@dataclass(frozen=True)
class Bitrix24Settings:
    """How the connector reads a portal.

    `lookback_seconds`: how far before the cursor each night re-reads (late-visible changes);
    `requests_per_second`/`burst`: the client-side limit (the documented portal limit is 2 a
    second with 50 before blocking); `timeout`, `max_attempts`, `backoff_factor`, `max_delay`:
    each request's timeout and its retries; `max_operating_wait`: the longest wait for a method's
    operating time to reset after 429 OPERATION_TIME_LIMIT (the portal's window is 10 minutes);
    `reconcile`: find deletions by an id-only scan;
    `connection`: the connection's name in messages; `counter`: counts the requests sent.
    """

    lookback_seconds: float = 3600.0
    requests_per_second: float = 1.5
    burst: int = 10
    timeout: float = 60.0
    max_attempts: int = 6
    backoff_factor: float = 1.0
    max_delay: float = 120.0
    max_operating_wait: float = 600.0
    reconcile: bool = True
    connection: str = "bitrix24"
    counter: RequestCounter | None = None


class Bitrix24Error(RuntimeError):
    """The portal could not be read; the message names the connection, never its secret."""


class Bitrix24AuthError(Bitrix24Error, SourceRefused):
    """The portal refused the webhook (wrong URL, user or secret)."""


class _Redact(logging.Filter):
    """Masks a secret in every record of the logger it is attached to."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to logging
            return True
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), ()
        return True


def _guard_logs(secret: str) -> None:
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redact) and f.secret == secret for f in logger.filters):
            logger.addFilter(_Redact(secret))


class Bitrix24Client:
    """Calls REST methods through the webhook: throttled, retried, errors that never show the secret."""

    def __init__(self, webhook_url: str, settings: Bitrix24Settings) -> None:
        self.settings = settings
        url = urllib.parse.urlsplit(webhook_url.strip())
        parts = [p for p in url.path.split("/") if p]
        if url.scheme not in ("http", "https") or not url.netloc or len(parts) < 3 or parts[-3] != "rest":
            raise Bitrix24Error(
                f"Bitrix24 connection {settings.connection!r}: the webhook URL is not of the form "
                "https://<portal>/rest/<user id>/<secret>/"
            )
        self._secret = parts[-1]
        _guard_logs(self._secret)
        prefix = "/".join(parts[:-1])
        self._base = f"{url.scheme}://{url.netloc}/{prefix}/{self._secret}/"
        self.where = f"Bitrix24 connection {settings.connection!r} ({url.scheme}://{url.netloc}/{prefix}/***/)"
        self._resets: dict[str, float] = {}  # per method: when its operating time resets (monotonic)
        self.session = api_session(
            settings.requests_per_second,
            settings.burst,
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            backoff_factor=settings.backoff_factor,
            max_delay=settings.max_delay,
            counter=settings.counter,
            # 429 on a portal is OPERATION_TIME_LIMIT (its rate limit answers 503): waited out by
            # `_wait_for_operating_time`, not retried blindly by the session
            retry_statuses=tuple(range(500, 600)),
        )

    def _clean(self, text: str) -> str:
        return text.replace(self._secret, "***")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One method's answer (`result`, `total`, `next`, `time`); Bitrix24Error when it fails."""
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                r = self.session.post(self._base + method + ".json", json=params or {}, timeout=self.settings.timeout)
            except requests.RequestException as e:
                raise Bitrix24Error(
                    f"{self.where}: {method} failed: {type(e).__name__}: {self._clean(str(e))}"
                ) from None
            if r.status_code == 401:
                raise Bitrix24AuthError(
                    f"{self.where}: the portal refused the webhook ({r.status_code} {self._error(r)}); "
                    "check the webhook URL, its user id and its secret"
                )
            used_up = r.status_code == 429 and "OPERATION_TIME_LIMIT" in self._error(r)
            if used_up and attempt < self.settings.max_attempts:
                self._wait_for_operating_time(method)
                continue
            if r.status_code >= 400:
                raise Bitrix24Error(f"{self.where}: {method} answered {r.status_code} {self._error(r)}")
            try:
                answer = r.json()
            except ValueError:
                answer = None
            if isinstance(answer, dict) and "error" not in answer:
                self._note_operating_time(method, answer.get("time"))
                return answer
            if isinstance(answer, dict):
                raise Bitrix24Error(f"{self.where}: {method} answered {self._error(r)}")
            log.warning("%s: %s gave an unparseable answer (attempt %d)", self.where, method, attempt)
            time.sleep(min(self.settings.max_delay, self.settings.backoff_factor * 2 ** (attempt - 1)))
        raise Bitrix24Error(f"{self.where}: {method} gave unparseable answers {self.settings.max_attempts} times")

    def _note_operating_time(self, method: str, block: Any) -> None:
        """Keep when `method`'s operating time resets, from an answer's `time` block: the portal's
        `operating_reset_at` less its `finish` (both in the portal's clock, so no clock skew)."""
        if isinstance(block, dict) and block.get("operating_reset_at") and block.get("finish"):
            in_seconds = float(block["operating_reset_at"]) - float(block["finish"])
            self._resets[method] = time.monotonic() + max(0.0, in_seconds)

    def _wait_for_operating_time(self, method: str) -> None:
        """After 429 OPERATION_TIME_LIMIT: wait until the method's time resets (as the last good
        answer said; else the backoff's longest delay), at most `max_operating_wait`."""
        reset = self._resets.pop(method, None)  # used once: a second 429 waits the longest backoff
        wait = reset - time.monotonic() if reset is not None else self.settings.max_delay
        if wait > self.settings.max_operating_wait:
            raise Bitrix24Error(
                f"{self.where}: {method} used up its operating time (429 OPERATION_TIME_LIMIT); it resets in "
                f"{wait:.0f} s, more than max_operating_wait ({self.settings.max_operating_wait:.0f} s)"
            )
        wait = max(1.0, wait)
        log.warning(
            "%s: %s used up its operating time (429 OPERATION_TIME_LIMIT); waiting %.0f s for it to reset",
            self.where,
            method,
            wait,
        )
        time.sleep(wait)

    def _error(self, r: requests.Response) -> str:
        try:
            body = r.json()
            return self._clean(f"{body.get('error', '')}: {body.get('error_description', '')}".strip(": "))
        except (ValueError, AttributeError):
            return self._clean(r.text[:200])

    def pages(self, method: str, params: dict[str, Any], key: str | None = None) -> Iterator[list[dict]]:
        """Every page of a list by `start`/`next` (for the small lists); `key`: the list inside `result`."""
        start = 0
        while True:
            answer = self.call(method, {**params, "start": start})
            result = answer["result"]
            yield list(result[key] if key else result)
            if "next" not in answer:
                return
            start = int(answer["next"])

    def modified_since(
        self, method: str, field: str, since: datetime, params: dict[str, Any]
    ) -> Iterator[tuple[list[dict], float]]:
        """Pages of the records modified at or after `since`, ordered by (field, ID), by keys (see
        the module doc); with each page, the portal's time of the first answer (epoch seconds)."""
        base_filter = dict(params.get("filter") or {})
        order = {field: "ASC", "ID": "ASC"}
        lower: tuple[str, str] = (">=" + field, since.isoformat())
        seen: tuple[str, set[int]] = ("", set())  # rows of the previous page's last timestamp
        started: float | None = None
        while True:
            flt = {**base_filter, lower[0]: lower[1]}
            answer = self.call(method, {**params, "filter": flt, "order": order, "start": -1})
            started = started if started is not None else float(answer["time"]["start"])
            rows = answer["result"]
            yield [r for r in rows if not (r[field] == seen[0] and int(r["ID"]) in seen[1])], started
            if len(rows) < PAGE:
                return
            last_t = rows[-1][field]
            if rows[0][field] != last_t:  # go on from the last timestamp, skipping its rows seen
                seen = (last_t, {int(r["ID"]) for r in rows if r[field] == last_t})
                lower = (">=" + field, last_t)
                continue
            last_id = int(rows[-1]["ID"])
            while True:  # a whole page of one timestamp: drain it by ID, then go on after it
                tie_filter = {**base_filter, ">=" + field: last_t, "<=" + field: last_t, ">ID": last_id}
                tie = self.call(method, {**params, "filter": tie_filter, "order": {"ID": "ASC"}, "start": -1})
                yield tie["result"], started
                if len(tie["result"]) < PAGE:
                    break
                last_id = int(tie["result"][-1]["ID"])
            seen, lower = ("", set()), (">" + field, last_t)

    def existing(self, method: str, candidates: Iterable[int], base_filter: dict[str, Any] | None = None) -> set[int]:
        """Which of `candidates` the list still has: a `batch` of up to 50 commands, each asking for
        up to 50 ids by `@ID` (ids only, `start=-1`), so 2,500 ids a request; an id-only scan of the
        whole list would take one request per 50. A command that fails fails the check (a deletion
        is never inferred from an error)."""
        found: set[int] = set()
        ordered = sorted(candidates)
        per_request = PAGE * BATCH
        for i in range(0, len(ordered), per_request):
            chunk = ordered[i : i + per_request]
            cmd = {}
            for j in range(0, len(chunk), PAGE):
                ids = chunk[j : j + PAGE]
                query = {"filter": {**(base_filter or {}), "@ID": ids}, "select": ["ID"], "start": -1}
                cmd[f"c{j // PAGE}"] = f"{method}?{_php_query(query)}"
            answer = self.call("batch", {"halt": 0, "cmd": cmd})["result"]
            errors = answer.get("result_error") or {}
            if errors:
                first = next(iter(errors.values()))
                raise Bitrix24Error(f"{self.where}: {method} (checking which records still exist): {first}")
            for rows in (answer.get("result") or {}).values():
                found.update(int(r["ID"]) for r in rows or [])
        return found


def _php_query(params: Mapping[str, Any], prefix: str = "") -> str:
    """`params` as a PHP-style query string (`filter[@ID][0]=1&select[0]=ID`), as batch commands take."""
    parts: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        elif isinstance(value, (list, tuple)):
            for n, v in enumerate(value):
                walk(v, f"{key}[{n}]")
        else:
            parts.append((key, str(value)))

    walk(params, prefix)
    return urllib.parse.urlencode(parts)


def _instant(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as [first, last] runs: Bitrix24 ids are sequential, so the live set stays small."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _from_ranges(ranges: Iterable[Iterable[int]]) -> set[int]:
    out: set[int] = set()
    for first, last in ranges:
        out.update(range(int(first), int(last) + 1))
    return out


def bitrix24_source(webhook_url: str, *, settings: Bitrix24Settings | None = None) -> Any:
    """The dlt source of one Bitrix24 portal reached through its inbound webhook (see the module doc)."""
    settings = settings or Bitrix24Settings()
    client = Bitrix24Client(webhook_url, settings)
    lookback = float(settings.lookback_seconds)

    def reconcile(stream: str, method: str, landed: set[int], started: float, flt: dict | None = None) -> Iterator:
        """Deletion versions for the ids known live that the portal no longer lists."""
        state = dlt.current.resource_state()
        live = _from_ranges(state.get("live", [])) | landed
        if settings.reconcile:
            unseen = live - landed  # a record read tonight exists: check only the others
            gone = unseen - client.existing(method, unseen, flt)
            when = datetime.fromtimestamp(started, UTC)
            for record_id in sorted(gone):
                yield version_row(record_id, when, {"ID": str(record_id)}, is_deleted=True)
            if gone:
                log.info("%s: %s: %d records deleted since the last night", client.where, stream, len(gone))
            live -= gone
        state["live"] = _ranges(live)

    def incremental_stream(name: str, method: str, field: str, select: list[str], flt: dict | None = None) -> Any:
        @raw_resource(name)
        def stream(
            updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
                "updated_at", initial_value=EPOCH, lag=lookback
            ),
        ) -> Iterator[Any]:
            since = updated_at.start_value or EPOCH
            landed: set[int] = set()
            started = time.time()
            for rows, started in client.modified_since(method, field, since, {"select": select, "filter": flt or {}}):
                page = []
                for row in rows:
                    changed = _instant(row[field])
                    if changed.timestamp() > started:
                        continue  # changed during the extraction: the next night reads it
                    landed.add(int(row["ID"]))
                    page.append(row)
                    yield version_row(row["ID"], changed, row)
                if name == "deals" and page:
                    yield from deal_links(page, field)
            yield from reconcile(name, method, landed, started, flt)

        return stream

    def deal_links(deals: list[dict], field: str) -> Iterator[Any]:
        """Each deal's contact links, one snapshot per deal and deal version, 50 deals a batch call."""
        for i in range(0, len(deals), BATCH):
            chunk = deals[i : i + BATCH]
            cmd = {f"d{d['ID']}": f"crm.deal.contact.items.get?id={d['ID']}" for d in chunk}
            answer = client.call("batch", {"halt": 0, "cmd": cmd})["result"]
            results = answer.get("result") or {}
            for d in chunk:
                items = results.get(f"d{d['ID']}")
                if items is None:
                    continue  # deleted meanwhile: the reconciliation finds it
                doc = {"ID": d["ID"], field: d[field], "CONTACTS": items}
                yield dlt.mark.with_table_name(version_row(d["ID"], _instant(d[field]), doc), "deal_contacts")

    def snapshot_stream(name: str, fetch: Any, key: str) -> Any:
        @raw_resource(name)
        def stream() -> Iterator[Any]:
            started = time.time()
            rows = list(fetch())
            state = dlt.current.resource_state()
            live = set(state.get("live", []))
            current = {str(r[key]) for r in rows}
            for row in rows:
                yield version_row(row[key], None, row)
            when = datetime.fromtimestamp(started, UTC)
            for gone in sorted(live - current):
                yield version_row(gone, when, {key: gone}, is_deleted=True)
            state["live"] = sorted(current)

        return stream

    def users() -> Iterator[dict]:
        for page in client.pages("user.get", {"sort": "ID", "order": "ASC"}):
            yield from page

    def categories() -> list[dict]:
        return client.call("crm.category.list", {"entityTypeId": 2})["result"]["categories"]

    def stages() -> Iterator[dict]:
        entity_ids = ["DEAL_STAGE" if int(c["id"]) == 0 else f"DEAL_STAGE_{c['id']}" for c in categories()]
        for page in client.pages("crm.status.list", {"filter": {"@ENTITY_ID": entity_ids}, "order": {"SORT": "ASC"}}):
            yield from page

    @raw_resource("stage_history")
    def stage_history() -> Iterator[Any]:
        state = dlt.current.resource_state()
        last = int(state.get("last_id", 0))
        while True:
            answer = client.call(
                "crm.stagehistory.list",
                {"entityTypeId": 2, "filter": {">ID": last}, "order": {"ID": "ASC"}, "start": -1},
            )
            items = answer["result"]["items"]
            for item in items:
                yield version_row(item["ID"], _instant(item["CREATED_TIME"]), item)
                last = max(last, int(item["ID"]))
            state["last_id"] = last
            if len(items) < PAGE:
                return

    @dlt.source(name="bitrix24", max_table_nesting=0)
    def source() -> list[Any]:
        return [
            snapshot_stream("users", users, "ID"),
            snapshot_stream("deal_categories", categories, "id"),
            snapshot_stream("deal_stages", stages, "STATUS_ID"),
            incremental_stream("companies", "crm.company.list", "DATE_MODIFY", ["*", "UF_*", "WEB"]),
            incremental_stream("requisites", "crm.requisite.list", "DATE_MODIFY", [], {"ENTITY_TYPE_ID": 4}),
            incremental_stream("contacts", "crm.contact.list", "DATE_MODIFY", ["*", "UF_*", "EMAIL", "PHONE"]),
            incremental_stream("deals", "crm.deal.list", "DATE_MODIFY", ["*", "UF_*"]),
            stage_history,
            incremental_stream("activities", "crm.activity.list", "LAST_UPDATED", ["*", "COMMUNICATIONS"]),
        ]

    return source()


__all__ = ["Bitrix24AuthError", "Bitrix24Client", "Bitrix24Error", "Bitrix24Settings", "bitrix24_source"]
