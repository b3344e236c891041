"""The Bitrix24 connector against the fake portal: two nights into a real PostgreSQL (only the change
is read, equal timestamps across a page boundary, deletions found by reconciliation), the documented
limit answers and faults mid-paging, a crash and a resumed run, a wrong webhook, the secret kept out."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
import requests

from b2b_pipeline.generate import generate_company
from b2b_pipeline.sources.bitrix24.connector import Bitrix24Client, Bitrix24Error, Bitrix24Settings, bitrix24_source
from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24, parse_instant
from b2b_pipeline.sources.landing import land

NIGHT1 = datetime(2026, 11, 24, tzinfo=UTC)
NIGHT2 = datetime(2026, 11, 26, tzinfo=UTC)
SECRET = "hook-secret-4f9a1c"
LOOKBACK = 3600.0
FAST = {"requests_per_second": 200.0, "burst": 50, "backoff_factor": 0.01, "max_delay": 2.0}


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b24drop")
    generate_company(out, seed=5, accounts=12, start=date(2026, 3, 1), end=date(2026, 11, 25), nightly_days=2)
    return out


@pytest.fixture
def fake(drop: Path) -> Iterator[FakeBitrix24]:
    with FakeBitrix24(drop, webhook_user=3, webhook_secret=SECRET, now=NIGHT1, rate=1000, burst=1000) as f:
        yield f


def settings(**kw: object) -> Bitrix24Settings:
    return Bitrix24Settings(**{"lookback_seconds": LOOKBACK, "connection": "crm-test", **FAST, **kw})  # type: ignore[arg-type]


def extract(source: object, tmp_path: Path) -> list[dict]:
    """The rows a source yields, outside the warehouse: under a fresh pipeline (fresh state), as dlt
    otherwise reads cursors from the last pipeline this process activated."""
    import dlt

    dlt.pipeline(pipeline_name=f"b24_extract_{uuid.uuid4().hex[:8]}", pipelines_dir=str(tmp_path / "dlt"))
    return list(source)  # type: ignore[call-overload]


def rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def live_ids(dsn: str, table: str) -> set[str]:
    """Record ids whose latest version is not a deletion."""
    return {
        r[0]
        for r in rows(
            dsn,
            f"select distinct on (record_id) record_id, is_deleted from raw_bitrix24.{table} "
            "order by record_id, updated_at desc nulls last, is_deleted desc",
        )
        if not r[1]
    }


def no_duplicates(dsn: str, table: str) -> bool:
    [(n, distinct)] = rows(dsn, f"select count(*), count(distinct (record_id, _version)) from raw_bitrix24.{table}")
    return n == distinct


@pytest.mark.integration
def test_two_nights(fake: FakeBitrix24, warehouse: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first = land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=settings()), home=tmp_path)
    now1 = fake.now()
    for table, entity in (("deals", "deals"), ("contacts", "contacts"), ("companies", "accounts")):
        expected = {str(fake.b24_id(entity, k[0])) for k in fake._store.current(entity, now1)}
        assert live_ids(warehouse, table) == expected, table
    assert first.rows["deal_contacts"] == first.rows["deals"]
    assert rows(warehouse, "select count(*) from raw_bitrix24.deal_stages")[0][0] == 17
    [(inn,)] = rows(warehouse, "select count(*) from raw_bitrix24.requisites where doc ->> 'RQ_INN' <> ''")
    assert inn > 0
    [(cursor,)] = rows(warehouse, "select max(updated_at) from raw_bitrix24.deals")

    # the second night: the two day folders become visible; 60 activities change at one instant
    # (more than a page of equal timestamps); a deal and an activity are deleted
    requests.post(fake.base_url + "/_admin/clock", json={"now": NIGHT2.isoformat()}, timeout=5).raise_for_status()
    activities = sorted(
        fake._store.current("activities", NIGHT2.timestamp()), key=lambda k: fake.b24_id("activities", k)
    )
    for key in activities[:60]:
        fake.change("activities", "update", key, {"channel": "meeting"})
    deal_key = sorted(fake._store.current("deals", NIGHT2.timestamp()))[0]
    admin = {"entity": "deals", "op": "delete", "id": deal_key[0]}
    requests.post(fake.base_url + "/_admin/records", json=admin, timeout=5).raise_for_status()
    activity_key = activities[-1]
    fake.change("activities", "delete", activity_key)
    deal_id, activity_id = str(fake.b24_id("deals", deal_key)), str(fake.b24_id("activities", activity_key))
    calls_before = len(fake.calls)
    second = land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=settings()), home=tmp_path)
    night2 = fake.calls[calls_before:]

    # only the change is asked for: >= the cursor (the latest change landed) minus the lookback
    deal_reads = [c for c in night2 if c.method == "crm.deal.list" and c.params.get("select") != ["ID"]]
    since = parse_instant(deal_reads[0].params["filter"][">=DATE_MODIFY"])
    assert since == cursor.timestamp() - LOOKBACK
    changed = [k for k, (t, _) in fake._store.current("deals", NIGHT2.timestamp()).items() if t >= since]
    assert len(deal_reads) == 1 and second.rows["deals"] == len(changed) + 1  # the changes and one deletion
    assert len(changed) < len(fake._store.current("deals", NIGHT2.timestamp()))

    # equal timestamps across a page boundary: all 60 landed
    [(n,)] = rows(
        warehouse,
        "select count(distinct record_id) from raw_bitrix24.activities "
        f"where updated_at = '{NIGHT2.isoformat()}' and not is_deleted",
    )
    assert n == 60
    # deletions found by reconciliation
    assert deal_id not in live_ids(warehouse, "deals") and activity_id not in live_ids(warehouse, "activities")
    deleted = rows(warehouse, "select record_id, updated_at from raw_bitrix24.deals where is_deleted")
    assert deleted == [(deal_id, NIGHT2)]
    for table in ("deals", "contacts", "activities", "deal_contacts", "stage_history", "users"):
        assert no_duplicates(warehouse, table), table
    assert "crm.deal.list" in caplog.text  # the log was captured (urllib3 logs each request at DEBUG) ...
    assert SECRET not in caplog.text  # ... and holds no secret


def test_limit_answers_faults_and_timeouts_mid_paging_are_retried(drop: Path, tmp_path: Path) -> None:
    with FakeBitrix24(drop, webhook_user=3, webhook_secret=SECRET, now=NIGHT2, rate=1000, burst=1000) as fake:
        fake.fault("crm.activity.list", "503", after=1, count=1)  # QUERY_LIMIT_EXCEEDED on the second page
        fake.fault("crm.activity.list", "malformed", after=1)
        fake.fault("crm.activity.list", "timeout", after=1, seconds=1.0)
        fake.fault("crm.activity.list", "500", after=1)
        src = bitrix24_source(fake.webhook_url, settings=settings(timeout=0.4)).with_resources("activities")
        got = {r["record_id"] for r in extract(src, tmp_path) if not r["is_deleted"]}
        expected = {str(fake.b24_id("activities", k[0])) for k in fake._store.current("activities", fake.now())}
        assert got == expected and len(expected) > 100
        statuses = [c.status for c in fake.calls_of("crm.activity.list")]
        assert 503 in statuses and 500 in statuses
    # the portal's own leaky bucket: past the burst it answers 503 QUERY_LIMIT_EXCEEDED, which is retried
    with FakeBitrix24(drop, webhook_user=3, webhook_secret=SECRET, now=NIGHT2, rate=2, burst=1) as fake:
        # backoff long enough for the bucket to leak a slot (0.5 s at 2 a second): 0.2, 0.4, 0.8 s...
        src = bitrix24_source(fake.webhook_url, settings=settings(backoff_factor=0.2)).with_resources("deals")
        got = {r["record_id"] for r in extract(src, tmp_path) if "CONTACTS" not in r["doc"]}
        assert got == {str(fake.b24_id("deals", k[0])) for k in fake._store.current("deals", fake.now())}
        assert any(c.status == 503 for c in fake.calls)


def test_a_used_up_operating_time_is_waited_out_until_the_portal_resets_it(
    drop: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """429 OPERATION_TIME_LIMIT: the client waits until the `operating_reset_at` of the method's last
    good answer (the portal's window, 3 s here instead of 10 minutes), then goes on; a reset further
    away than `max_operating_wait` fails at once with the reason."""
    caplog.set_level(logging.WARNING)
    with FakeBitrix24(
        drop, webhook_user=3, webhook_secret=SECRET, now=NIGHT2, rate=1000, burst=1000,
        operating_limit=1.5, operating_cost=1.0, operating_window=3.0,
    ) as fake:  # fmt: skip
        client = Bitrix24Client(fake.webhook_url, settings(max_attempts=3))
        began = time.monotonic()
        for _ in range(3):  # the first two use up the method's 1.5 s; the third is refused, then waits
            assert client.call("crm.deal.list", {"select": ["ID"]})["result"]
        waited = time.monotonic() - began
        assert [c.status for c in fake.calls_of("crm.deal.list")][-2:] == [429, 200]
        assert 1.0 <= waited < 10, waited
        assert "OPERATION_TIME_LIMIT" in caplog.text and SECRET not in caplog.text

        impatient = Bitrix24Client(fake.webhook_url, settings(max_attempts=3, max_operating_wait=0.5))
        impatient.call("crm.company.list", {"select": ["ID"]})
        impatient.call("crm.company.list", {"select": ["ID"]})
        with pytest.raises(Bitrix24Error, match=r"used up its operating time .* more than max_operating_wait"):
            impatient.call("crm.company.list", {"select": ["ID"]})


@pytest.mark.integration
def test_a_crash_mid_extract_then_a_resumed_run(fake: FakeBitrix24, warehouse: str, tmp_path: Path) -> None:
    fake.fault("crm.activity.list", "500", after=2, count=2)  # the third page fails twice: out of attempts
    with pytest.raises(Exception, match="500 INTERNAL_SERVER_ERROR"):
        land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=settings(max_attempts=2)), home=tmp_path)
    land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=settings()), home=tmp_path)
    now = fake.now()
    for table, entity in (("activities", "activities"), ("deals", "deals"), ("contacts", "contacts")):
        assert live_ids(warehouse, table) == {str(fake.b24_id(entity, k[0])) for k in fake._store.current(entity, now)}
        assert no_duplicates(warehouse, table), table


def test_a_wrong_webhook_names_the_connection_never_the_secret(
    fake: FakeBitrix24, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + SECRET
    url = f"{fake.base_url}/rest/3/{wrong}/"
    with pytest.raises(Exception) as info:
        extract(bitrix24_source(url, settings=settings()).with_resources("users"), tmp_path)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = "\n".join(chain)
    assert "Bitrix24 connection 'crm-test'" in text and "NO_AUTH_FOUND" in text and "/rest/3/***/" in text
    assert wrong not in text and SECRET not in text
    assert "/rest/" in caplog.text  # the log was captured ...
    assert wrong not in caplog.text and SECRET not in caplog.text
    with pytest.raises(Bitrix24Error, match="not of the form"):
        bitrix24_source("https://portal.example/crm/", settings=settings())


def activities_now(fake: FakeBitrix24) -> dict[str, dict]:
    """Every activity as the connector asks for it, as of the portal's clock (ID -> record)."""
    client = Bitrix24Client(fake.webhook_url, settings())
    pages = client.pages("crm.activity.list", {"select": ["*", "COMMUNICATIONS"], "order": {"ID": "ASC"}})
    return {row["ID"]: row for page in pages for row in page}


def latest_docs(dsn: str, table: str) -> dict[str, dict]:
    """The latest landed version of each record that is not a deletion: record id -> doc."""
    got = rows(
        dsn,
        f"select distinct on (record_id) record_id, doc, is_deleted from raw_bitrix24.{table} "
        "order by record_id, updated_at desc nulls last, is_deleted desc, _extracted_at desc",
    )
    return {r[0]: r[1] for r in got if not r[2]}


@pytest.mark.integration
@pytest.mark.parametrize("later", [0, 90], ids=["stamped-at-the-start", "stamped-after-the-start"])
def test_a_record_updated_during_a_sync(fake: FakeBitrix24, warehouse: str, tmp_path: Path, later: int) -> None:
    """While the night pages through the activities (50 a page), right after page 1 is served, an
    activity of page 1 changes (it moves to the end of the LAST_UPDATED order) and so does one of
    page 3, stamped with the portal's clock at the extraction start or 90 s after it. Nothing is
    lost (tonight every activity not changed meanwhile lands as of the start; after the next night
    every activity's latest landed version is the portal's), nothing is landed twice, and the
    cursor stays at or before the extraction start, so the next night reads the changes."""
    started = fake.now()
    before = activities_now(fake)
    current = fake._store.current("activities", started)
    order = sorted(current, key=lambda k: (current[k][0], fake.b24_id("activities", k)))
    assert len(order) > 2 * 50
    moved, ahead = order[0], order[110]  # served on page 1; not served yet (page 3)
    changed = {str(fake.b24_id("activities", moved)), str(fake.b24_id("activities", ahead))}

    def during(f: FakeBitrix24) -> None:
        f.set_now(datetime.fromtimestamp(started + later, UTC))
        f.change("activities", "update", moved, {"channel": "meeting"})
        f.change("activities", "update", ahead, {"channel": "meeting"})

    fake.on_call("crm.activity.list", 1, during)
    land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=settings()), home=tmp_path)
    after = activities_now(fake)
    assert all(parse_instant(after[i]["LAST_UPDATED"]) == started + later for i in changed)  # they happened
    landed = latest_docs(warehouse, "activities")
    for record_id, doc in before.items():
        if record_id not in changed:  # not changed during the sync: landed as of the start, none skipped
            assert landed.get(record_id) == doc, record_id
        else:  # changed meanwhile: as of the start, the change, or (stamped after the start) not yet
            assert landed.get(record_id) in (doc, after[record_id], *([None] if later else [])), record_id
    for table in ("deals", "contacts", "companies", "activities", "deal_contacts", "stage_history", "users"):
        assert no_duplicates(warehouse, table), table
    [(cursor,)] = rows(warehouse, "select max(updated_at) from raw_bitrix24.activities")
    assert cursor.timestamp() <= started  # the cursor never passes the extraction start

    # the next night reads every change made during the first one
    fake.set_now(NIGHT2)
    calls = len(fake.calls)
    land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=settings()), home=tmp_path)
    first = next(c for c in fake.calls[calls:] if c.method == "crm.activity.list")
    assert parse_instant(first.params["filter"][">=LAST_UPDATED"]) <= started
    assert latest_docs(warehouse, "activities") == activities_now(fake)
    for table in ("activities", "deal_contacts"):
        assert no_duplicates(warehouse, table), table
