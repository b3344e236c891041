"""`b2b bench --api`: what extracting the CRM through amoCRM, Bitrix24 or HubSpot, and billing through
Stripe, costs, in requests and time.

For each company size and each API source: the source's local fake (`sources/<source>/fake.py`),
seeded from the company's generated file drop and serving it as of its clock, extracted by the
real connector (`registry.extract_api`) into a scratch warehouse database, two nights:

- night 1, the full extraction: the fake's clock at the last second of the day before the drop's
  last day, nothing landed yet;
- night 2, the nightly increment: the clock at the last second of the last day, whose changes
  (the generator's dated folder of that day) are all the fake has new.

Per night: the requests sent (by endpoint or method, and by kind: the changes since the cursor
(amoCRM's and Stripe's events among them, HubSpot's searches, batch reads and associations), the
lists read whole (the small ones every night: users or owners, pipelines...; Stripe's customers,
subscriptions and invoices on its first night, or when its cursor is older than the 30 days of
events it keeps), Bitrix24's id-only scan that finds deletions, HubSpot's lists of archived records
that find them), the rows landed, the wall time with the rate limits raised on both sides (the
fake's and the connector's, so that the time measured is the work, not the throttle), and the time
the same requests take under the service's documented limit (amoCRM 7 requests a second; Bitrix24
2 a second, a burst of 50; HubSpot 100 in ten seconds for the app, i.e. 10 a second, and its search
5 a second apart, so its time is the searches' at 5 a second plus the others' at 10; Stripe 25 a
second): a computed lower bound, requests ÷ rate, not a measurement. The change size (the rows of
the last day's folder of the source's system: CRM, or billing for Stripe) and the increment's
requests per changed row show whether the increment costs requests in proportion to the change or
to the history.

The amoCRM fake is run memoized (the same answers, its per-page work done once a night: see
`_memoized_amocrm_fake`), or at size M the fake, not the connector, would take hours; the
Bitrix24 fake is run as it is, which puts size M out of reach for Bitrix24 (hours as well). The
HubSpot and Stripe fakes are run as they are.

Companies come from `bench/cache/` (the same ones `b2b bench` uses). Results go to
`bench/results/api-bench-<timestamp>.json` and `.md`. Numbers are measured, never asserted.
"""

from __future__ import annotations

import bisect
import json
import platform
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from b2b_pipeline.bench.harness import END, SEED, SIZES, START, _data_rows, cached_company
from b2b_pipeline.bench.load import scratch_database
from b2b_pipeline.night import cutoff

Say = Callable[[str], None]

SOURCES: tuple[str, ...] = ("amocrm", "bitrix24", "hubspot", "stripe")
SYSTEM = {"amocrm": "crm", "bitrix24": "crm", "hubspot": "crm", "stripe": "billing"}  # what each source serves
# the services' documented limits: requests a second on average, and how many may go at once
# (HubSpot: 100 in any ten seconds for the app, search 5 a second apart; Stripe: 25 a second per endpoint)
DOCUMENTED_LIMIT: dict[str, dict[str, float]] = {
    "amocrm": {"rate": 7.0, "burst": 7},
    "bitrix24": {"rate": 2.0, "burst": 50},
    "hubspot": {"rate": 10.0, "burst": 100, "search_rate": 5.0, "search_burst": 5},
    "stripe": {"rate": 25.0, "burst": 25},
}
UNTHROTTLED = 1_000_000  # requests a second: the fakes' limits and the connectors' own, raised out of the way
SECRET = "api-bench-secret"
STRIPE_KEY = f"rk_test_{SECRET}"  # a restricted key: read access is all the connector needs
NIGHTS = ("full", "increment")
# requests by kind: the lists read whole (amoCRM paths, Bitrix24 methods, HubSpot's and Stripe's
# endpoints): the small ones every night; Stripe's on its first night (or after a stale cursor)
WHOLE_LISTS = {
    "amocrm": ("/api/v4/account", "/api/v4/users", "/api/v4/leads/pipelines", "/custom_fields"),
    "bitrix24": ("user.get", "crm.category.list", "crm.status.list"),
    "hubspot": ("GET /crm/v3/owners", "GET /crm/v3/pipelines/deals", "GET /account-info/v3/details"),
    "stripe": ("/v1/customers", "/v1/subscriptions", "/v1/invoices"),
}
ID_SCAN = " (id scan)"  # suffix of a Bitrix24 call that checks which ids still exist, to find deletions
ARCHIVED = " (archived)"  # suffix of a HubSpot list of archived records, read every night to find deletions
SEARCH = "/search"  # HubSpot's search endpoints end so: limited apart (5 a second)


@dataclass(frozen=True)
class ApiCompany:
    """A generated company as the API benchmark uses it: its whole drop (the fakes serve it as of
    their clock) and what its last day changed."""

    size: str
    accounts: int
    drop: Path
    last_day: date
    history_rows: int  # CRM rows before the last day (every version the base export holds)
    change_rows: dict[str, int]  # CRM rows of the last day's folder, per entity
    billing_history_rows: int = 0  # the same of billing (Stripe's system), its fx rates left out
    billing_change_rows: dict[str, int] | None = None


def api_company(cache: Path, size: str, accounts: int, say: Say, *, start: date = START, end: date = END) -> ApiCompany:
    """The company of `size` with `accounts` accounts and its last day as a folder of changes: the
    bench's cached company when it is one of `b2b bench`'s, else generated once into `cache`."""
    if SIZES.get(size) == accounts and (start, end) == (START, END):
        drop = cached_company(cache, size, say).base.parent / "drop"
    else:
        from b2b_pipeline.generate import generate_company

        root = cache.resolve() / f"{size}-{accounts}-seed{SEED}-{start}-{end}"
        drop = root / "drop"
        done = root / "generated"
        if not done.exists():
            say(f"generating company {size} ({accounts:,} accounts, {start} to {end}) into {root}")
            if root.exists():
                shutil.rmtree(root)
            generate_company(drop, seed=SEED, accounts=accounts, start=start, end=end, nightly_days=1)
            done.touch()
    crm_history, crm_changes = _history_and_change(drop / "crm", end)
    # the fx rates are not Stripe's: a night reads them from the drop whatever its billing source
    billing_history, billing_changes = _history_and_change(drop / "billing", end, skip=("fx_rates",))
    return ApiCompany(size, accounts, drop, end, crm_history, crm_changes, billing_history, billing_changes)


def _history_and_change(system: Path, end: date, skip: tuple[str, ...] = ()) -> tuple[int, dict[str, int]]:
    """A system's rows before `end` (every version), and the rows of `end`'s folder per entity;
    the entities in `skip` left out."""
    if not system.exists():
        return 0, {}

    def counted(f: Path) -> bool:
        return f.is_file() and f.name.split(".", 1)[0] not in skip

    day = system / end.isoformat()
    history = sum(_data_rows(f) for f in system.iterdir() if counted(f))
    history += sum(
        _data_rows(f) for d in system.iterdir() if d.is_dir() and d != day for f in d.iterdir() if counted(f)
    )
    changes = (
        {f.name.split(".", 1)[0]: _data_rows(f) for f in sorted(day.iterdir()) if counted(f)} if day.exists() else {}
    )
    return history, changes


def _memoized_amocrm_fake() -> type:
    """The amoCRM fake, answering exactly as it does, but doing each night's work once rather than
    once per page: the fake filters and sorts the whole list, and shapes every lead left in it
    (`with=...`), for every page it serves, which at size M (some 8,600 pages of lists of up to
    840,000 records) would take hours of the fake's time, not the connector's. A query ordered by
    `updated_at` (the connector's, which pages by keys: each request starts at page 1 from the last
    `updated_at` read) is answered from the list filtered without its lower bound and sorted once,
    cut at the lower bound; any other query (events: the same query page after page) is computed
    once per query; each lead is shaped once. All give the fake's own answer."""
    from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM, _multi, _range

    lower = "filter[updated_at][from]"

    class MemoizedFakeAmoCRM(FakeAmoCRM):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._memo: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
            self._memo_lock = threading.Lock()
            self._leads: dict[tuple[int, frozenset[str]], tuple[dict[str, Any], dict[str, Any]]] = {}

        def set_clock(self, now: datetime) -> None:
            with self._memo_lock:
                self._memo.clear()
                self._leads.clear()
            super().set_clock(now)

        def _memoized(
            self, name: str, compute: Callable[..., list[Any]], items: list[Any], query: dict[str, list[str]]
        ) -> list[Any]:
            key = (name, id(items), tuple(sorted((k, tuple(v)) for k, v in query.items() if k != "page")))
            with self._memo_lock:
                hit = self._memo.get(key)
            if hit is not None and hit[0] is items:  # the same list of the same view: the same answer
                return hit[1]
            out = compute(items, query)
            with self._memo_lock:
                self._memo[key] = (items, out)
            return out

        def _filter(self, items: list[Any], query: dict[str, list[str]]) -> list[Any]:  # type: ignore[override]
            order = [(k, v) for k, v in query.items() if k.startswith("order[")]
            by_keys = (
                order == [("order[updated_at]", ["asc"])]
                and "filter[updated_at]" not in query
                and not _multi(query, "id")
            )
            if not by_keys:
                return self._memoized("filter", FakeAmoCRM._filter, items, query)
            lo, _ = _range(query, "updated_at")
            whole = self._memoized("by_keys", FakeAmoCRM._filter, items, {k: v for k, v in query.items() if k != lower})
            if lo is None:
                return whole
            return whole[bisect.bisect_left(whole, lo, key=lambda i: i.get("updated_at") or 0) :]

        def _filter_events(self, items: list[Any], query: dict[str, list[str]]) -> list[Any]:  # type: ignore[override]
            return self._memoized("events", FakeAmoCRM._filter_events, items, query)

        def _lead_with(self, item: dict[str, Any], withs: set[str]) -> dict[str, Any]:  # type: ignore[override]
            # the fake shapes every lead left in the list for each page it serves: once per lead instead
            key = (id(item), frozenset(withs))
            hit = self._leads.get(key)
            if hit is not None and hit[0] is item:
                return hit[1]
            out = FakeAmoCRM._lead_with(item, withs)
            self._leads[key] = (item, out)
            return out

    return MemoizedFakeAmoCRM


def _fake(source: str, drop: Path) -> Any:
    """The source's fake on `drop`, its rate limits (and Bitrix24's method-time limit, HubSpot's
    daily limit) raised."""
    if source == "amocrm":
        fake = _memoized_amocrm_fake()
        return fake(drop, token=SECRET, requests_per_second=UNTHROTTLED, abuse_threshold=UNTHROTTLED)
    if source == "hubspot":
        from b2b_pipeline.sources.hubspot.fake import FakeHubSpot

        return FakeHubSpot(
            drop,
            token=SECRET,
            requests_per_second=UNTHROTTLED,
            search_requests_per_second=UNTHROTTLED,
            daily_limit=UNTHROTTLED * UNTHROTTLED,
        )
    if source == "stripe":
        from b2b_pipeline.sources.stripe.fake import FakeStripe

        return FakeStripe(drop, api_key=STRIPE_KEY, requests_per_second=UNTHROTTLED)
    from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24

    return FakeBitrix24(
        drop,
        webhook_user=1,
        webhook_secret=SECRET,
        rate=UNTHROTTLED,
        burst=UNTHROTTLED,
        operating_limit=float(UNTHROTTLED),
    )


def _connection(source: str, fake: Any) -> Any:
    from b2b_pipeline.sources.registry import ApiConnection

    options = {"requests_per_second": str(UNTHROTTLED)}
    if source == "amocrm":
        return ApiConnection(source, fake.base_url, "bench connection b2b_amocrm", SECRET, options)
    if source == "hubspot":
        options["search_requests_per_second"] = str(UNTHROTTLED)
        return ApiConnection(source, fake.base_url, "bench connection b2b_hubspot", SECRET, options)
    if source == "stripe":
        return ApiConnection(source, fake.base_url, "bench connection b2b_stripe", STRIPE_KEY, options)
    return ApiConnection(source, fake.webhook_url, "bench connection b2b_bitrix24", "", options)


def _served(source: str, fake: Any, since: int) -> tuple[int, Counter[str], int, int]:
    """What the fake answered from its `since`-th logged request on: (HTTP requests, requests by
    endpoint or method, answers that were errors, Bitrix24 commands run inside `batch` calls).
    HubSpot's lists of archived records get `ARCHIVED` after their endpoint; Stripe's reads of one
    customer are counted under `/v1/customers/{id}`."""
    by: Counter[str] = Counter()
    errors = batched = 0
    if source in ("amocrm", "hubspot", "stripe"):
        for path, query, status in fake.requests[since:]:
            key = path
            if source == "hubspot" and "/objects/" in path and path.startswith("GET "):
                archived = str((query.get("archived") or ["false"])[0]).lower() == "true"
                key += ARCHIVED if archived else ""
            elif source == "stripe" and path.startswith("/v1/customers/"):
                key = "/v1/customers/{id}"
            by[key] += 1
            errors += status >= 400 or not status  # 0: a dropped connection
        return sum(by.values()), by, errors, 0
    for call in fake.calls[since:]:
        if call.via_batch:
            batched += 1
            continue
        commands = (call.params.get("cmd") or {}) if call.method == "batch" else {}
        # the deletion check: ids only, or a batch of `@ID` lists (Bitrix24Client.existing)
        scan = call.params.get("select") == ["ID"] or any("%40ID" in str(c) for c in commands.values())
        by[call.method + (ID_SCAN if scan else "")] += 1
        errors += call.status >= 400
    return sum(by.values()), by, errors, batched


def _kinds(source: str, by: Mapping[str, int]) -> dict[str, int]:
    """Requests by kind: changes (incremental streams, events, deal links and associations), whole
    lists, Bitrix24's deletion id scan, HubSpot's lists of archived records (deletions)."""
    out = {"changes": 0, "whole_lists": 0, "id_scan": 0, "deletions": 0}
    for key, n in by.items():
        if key.endswith(ID_SCAN):
            out["id_scan"] += n
        elif key.endswith(ARCHIVED):
            out["deletions"] += n
        elif any(key == w or key.endswith(w) for w in WHOLE_LISTS[source]):
            out["whole_lists"] += n
        else:
            out["changes"] += n
    return out


def _at_limits(source: str, requests: int, searches: int = 0) -> dict[str, float]:
    """Seconds the requests take at the documented rate (a lower bound; the burst of the limit
    lets at most `burst` of them go at once) and at the connector's own default rate. HubSpot's
    `searches` (of the `requests`) go under their own limit: the sum of both times."""
    from b2b_pipeline.sources.amocrm.connector import AmoCRMSettings
    from b2b_pipeline.sources.bitrix24.connector import Bitrix24Settings
    from b2b_pipeline.sources.hubspot.connector import HubSpotSettings
    from b2b_pipeline.sources.stripe.connector import StripeSettings

    limit = DOCUMENTED_LIMIT[source]
    if source == "hubspot":
        others = requests - searches
        search_rate, search_default = limit["search_rate"], HubSpotSettings.search_requests_per_second
        default = HubSpotSettings.requests_per_second
        return {
            "search_requests": searches,
            "documented_limit_seconds": round(searches / search_rate + others / limit["rate"], 1),
            "documented_limit_after_burst_seconds": round(
                max(0.0, searches - limit["search_burst"]) / search_rate
                + max(0.0, others - limit["burst"]) / limit["rate"],
                1,
            ),
            "connector_default_rate": default,
            "connector_default_search_rate": search_default,
            "connector_default_rate_seconds": round(searches / search_default + others / default, 1),
        }
    default = {
        "amocrm": AmoCRMSettings.requests_per_second,
        "bitrix24": Bitrix24Settings.requests_per_second,
        "stripe": StripeSettings.requests_per_second,
    }[source]
    return {
        "documented_limit_seconds": round(requests / limit["rate"], 1),
        "documented_limit_after_burst_seconds": round(max(0.0, requests - limit["burst"]) / limit["rate"], 1),
        "connector_default_rate": default,
        "connector_default_rate_seconds": round(requests / default, 1),
    }


def _move_clock(fake: Any, as_of: date) -> None:
    """The fake's clock to the last second of the night's as-of day: it serves what existed then."""
    moment = cutoff(as_of) - timedelta(seconds=1)
    if hasattr(fake, "set_clock"):
        fake.set_clock(moment)
    else:
        fake.set_now(moment)


def _night(source: str, fake: Any, dsn: str, home: Path, as_of: date) -> dict[str, Any]:
    from b2b_pipeline.sources.registry import extract_api

    _move_clock(fake, as_of)
    started = time.perf_counter()
    if source != "bitrix24":  # the fake renders its account as of the new clock (amoCRM at M: half a minute)
        fake.store.view()  # here, not in the night's first request, which the connector would time out and retry
    render = time.perf_counter() - started
    since = len(fake.calls if source == "bitrix24" else fake.requests)
    started = time.perf_counter()
    summary = extract_api(dsn, _connection(source, fake), home=home)
    wall = time.perf_counter() - started
    served, by, errors, batched = _served(source, fake, since)
    # HubSpot's searches, as the fake counted them (the connector counts all its requests together)
    searches = sum(n for k, n in by.items() if k.endswith(SEARCH)) if source == "hubspot" else 0
    night: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "requests": summary["requests"],  # the connector's count, retries included
        "served_requests": served,  # the fake's count
        "error_answers": errors,
        "requests_by_kind": _kinds(source, by),
        "requests_by_endpoint": dict(sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))),
        "rows_landed": summary["rows_landed"],
        "rows": summary["rows"],
        "wall_seconds": round(wall, 2),
        "fake_render_seconds": round(render, 2),
        **_at_limits(source, summary["requests"], searches),
    }
    if source == "bitrix24":
        night["batched_commands"] = batched
    return night


def bench_source(source: str, drop: Path, last_day: date, admin_dsn: str, home: Path, say: Say) -> dict[str, Any]:
    """The two nights of one source on one drop (full as of the day before `last_day`, then the increment)."""
    result: dict[str, Any] = {"source": source, "documented_limit": DOCUMENTED_LIMIT[source]}
    work = home / f"api-bench-{source}"  # dlt's working folder of this run, removed after
    if work.exists():
        shutil.rmtree(work)
    started = time.perf_counter()
    fake_cm: AbstractContextManager[Any] = _fake(source, drop)
    result["fake_seed_seconds"] = round(time.perf_counter() - started, 2)
    try:
        with scratch_database(admin_dsn) as dsn, fake_cm as fake:
            for name, as_of in zip(NIGHTS, (last_day - timedelta(days=1), last_day), strict=True):
                say(f"  {source}: {name} extraction as of {as_of}")
                result[name] = _night(source, fake, dsn, work, as_of)
                n = result[name]
                say(f"    {n['requests']:,} requests, {n['rows_landed']:,} rows, {n['wall_seconds']} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    full, inc = result["full"]["requests"], result["increment"]["requests"]
    result["increment_vs_full_requests"] = round(inc / full, 4) if full else None
    return result


def bench_company(
    company: ApiCompany,
    admin_dsn: str,
    home: Path,
    say: Say,
    sources: Iterable[str] = SOURCES,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Both nights of every source for one company, with its history and change sizes (CRM, and
    billing for Stripe); `progress` gets the result so far after each source."""
    billing_changes = company.billing_change_rows or {}
    changed_rows = {"crm": sum(company.change_rows.values()), "billing": sum(billing_changes.values())}
    result: dict[str, Any] = {
        "size": company.size,
        "accounts": company.accounts,
        "history_crm_rows": company.history_rows,
        "change_crm_rows": changed_rows["crm"],
        "change_by_entity": company.change_rows,
        "history_billing_rows": company.billing_history_rows,
        "change_billing_rows": changed_rows["billing"],
        "change_billing_by_entity": billing_changes,
        "sources": {},
    }
    for source in sources:
        say(f"[{company.size}] {source}")
        measured = bench_source(source, company.drop, company.last_day, admin_dsn, home, say)
        changed = changed_rows[SYSTEM[source]]
        inc = measured["increment"]
        measured["increment_requests_per_changed_row"] = round(inc["requests"] / changed, 3) if changed else None
        kinds = inc["requests_by_kind"]
        measured["increment_change_requests_per_changed_row"] = (
            round(kinds["changes"] / changed, 3) if changed else None
        )
        result["sources"][source] = measured
        if progress is not None:
            progress(result)
    return result


def run_api_bench(
    sizes: list[str],
    dsn: str,
    home: Path,
    cache: Path,
    out: Path,
    say: Say,
    *,
    accounts: Mapping[str, int] = SIZES,
    start: date = START,
    end: date = END,
    sources: Iterable[str] = SOURCES,
) -> tuple[Path, str]:
    """Measure the API sources for every size; write the JSON and Markdown reports; (json path, markdown).

    `dsn`: a superuser URL (scratch databases are created and dropped); `accounts`: the size table
    (`b2b bench`'s S, M, L by default); `start`/`end`: the generated history."""
    sources = tuple(sources)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "documented_limits": DOCUMENTED_LIMIT,
        "code": code_version(),
        "sizes": [],
    }
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = out / f"api-bench-{stamp}.json"

    def write() -> str:
        json_path.write_text(json.dumps(report, indent=2))
        markdown = to_markdown(report)
        json_path.with_suffix(".md").write_text(markdown)
        return markdown

    for size in sizes:
        company = api_company(cache, size, accounts[size], say, start=start, end=end)
        report["sizes"].append({"size": size, "sources": {}})

        def keep(result: dict[str, Any]) -> None:
            report["sizes"][-1] = result
            write()  # after every source, so that a long run that fails keeps what it measured

        keep(bench_company(company, dsn, home, say, sources, keep))
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return json_path, write()


def code_version() -> dict[str, str | None]:
    """Which code was measured: the commit, and a digest of the connectors and fakes as they are on
    disk (a working tree may differ from its commit)."""
    import hashlib
    import subprocess

    sources = Path(__file__).resolve().parent.parent / "sources"
    digest = hashlib.sha256()
    for path in sorted(sources.rglob("*.py")):
        digest.update(path.relative_to(sources).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=sources, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    return {"commit": head, "sources_sha256": digest.hexdigest()[:16]}


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# b2b bench --api, {report['started_at']}",
        "",
        f"{m['cpus']} cores, {m['memory_gb']} GB, Python {m['python']}; code {report['code']['commit']}, "
        f"sources/ digest {report['code']['sources_sha256']}. Wall seconds: the connector against "
        "the local fake with both rate limits raised. At the documented limit: requests ÷ the documented "
        "rate (amoCRM 7/s; Bitrix24 2/s; HubSpot 10/s, its searches 5/s apart: the sum of both; Stripe 25/s), "
        "a computed lower bound, not a measurement.",
        "",
        "| size | source | night | requests | changes / whole lists / id scan / archived lists | rows landed "
        "| wall s | at documented limit s | at connector default rate s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["sizes"]:
        for source, r in s["sources"].items():
            for night in NIGHTS:
                n = r[night]
                k = n["requests_by_kind"]
                rate = f"{n['connector_default_rate']}/s"
                if "connector_default_search_rate" in n:
                    rate += f", search {n['connector_default_search_rate']}/s"
                lines.append(
                    f"| {s['size']} | {source} | {night} | {n['requests']:,} "
                    f"| {k['changes']:,} / {k['whole_lists']:,} / {k['id_scan']:,} / {k.get('deletions', 0):,} "
                    f"| {n['rows_landed']:,} | {n['wall_seconds']} | {n['documented_limit_seconds']:,} "
                    f"| {n['connector_default_rate_seconds']:,} ({rate}) |"
                )
    lines += [
        "",
        "The increment against the history (rows before the last day) and the change (rows of the last "
        "day's folder), of the source's system (CRM; billing for Stripe):",
        "",
        "| size | source | history rows | changed rows | increment requests (changes) | per changed row "
        "(changes only) | increment ÷ full requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in report["sizes"]:
        for source, r in s["sources"].items():
            inc = r["increment"]
            system = SYSTEM[source]
            lines.append(
                f"| {s['size']} | {source} | {s[f'history_{system}_rows']:,} | {s[f'change_{system}_rows']:,} "
                f"| {inc['requests']:,} ({inc['requests_by_kind']['changes']:,}) "
                f"| {r['increment_requests_per_changed_row']} ({r['increment_change_requests_per_changed_row']}) "
                f"| {r['increment_vs_full_requests']} |"
            )
    lines += ["", "Requests by endpoint or method:", ""]
    for s in report["sizes"]:
        for source, r in s["sources"].items():
            for night in NIGHTS:
                parts = ", ".join(f"{k} {v}" for k, v in r[night]["requests_by_endpoint"].items())
                lines.append(f"- {s['size']} {source} {night}: {parts}")
    return "\n".join(lines) + "\n"
