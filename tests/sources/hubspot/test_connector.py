"""The HubSpot connector lands the fake's portal in a real PostgreSQL: two nights (the second reads only
the change plus the lookback), more than 10,000 records sharing one timestamp, ties across a page
boundary, an archived deal, a 429 mid-paging, a crash then a resumed run, a late-indexed record, a
wrong token; the token never in logs or errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from b2b_pipeline.sources.hubspot.connector import (
    HubSpotError,
    HubSpotRefused,
    HubSpotSettings,
    hubspot_source,
    parse_time,
)
from b2b_pipeline.sources.hubspot.fake import FakeHubSpot
from b2b_pipeline.sources.landing import LandingReport, RequestCounter, SourceRefused, land

from .conftest import TOKEN

pytestmark = pytest.mark.integration

SETTINGS = HubSpotSettings(
    connection_name="hubspot_test",
    lookback_seconds=600,
    max_attempts=3,
    backoff_factor=0.05,
    max_delay=2.0,
    timeout=5.0,
)
FAST = replace(SETTINGS, requests_per_second=200, burst=20, search_requests_per_second=200, search_burst=20)
OBJECTS = ("companies", "contacts", "deals", "calls", "emails", "meetings")
SEARCH = "POST /crm/v3/objects/{}/search"


@pytest.fixture
def fake(hubspot_drop: Path) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(hubspot_drop, token=TOKEN) as f:
        f.set_clock(f.now - timedelta(days=1))  # the night before the drop's last day
        yield f


def night(
    dsn: str,
    fake: FakeHubSpot,
    home: Path,
    settings: HubSpotSettings = SETTINGS,
    token: str = TOKEN,
    counter: RequestCounter | None = None,
) -> LandingReport:
    source = hubspot_source(fake.base_url, token, settings=settings, counter=counter, started_at=fake.now)
    return land(dsn, "hubspot", source, home=home)


def rows(dsn: str, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def served(fake: FakeHubSpot, object_type: str) -> set[str]:
    return {str(i) for i in fake.objects(object_type)}


def no_duplicates(dsn: str, table: str) -> None:
    ((total, distinct),) = rows(dsn, f"select count(*), count(distinct (record_id, _version)) from raw_hubspot.{table}")
    assert total == distinct, table


def latest_ids(dsn: str, table: str) -> set[str]:
    """Records whose latest landed version is not a deletion (what staging would keep)."""
    got = rows(
        dsn,
        f"""select record_id from (select distinct on (record_id) record_id, is_deleted
                from raw_hubspot.{table} order by record_id, updated_at desc, is_deleted desc) t
            where not is_deleted""",
    )
    return {r[0] for r in got}


def searches(fake: FakeHubSpot, object_type: str, since: int = 0) -> list[dict[str, Any]]:
    return [body for p, body, _ in fake.requests[since:] if p == SEARCH.format(object_type)]


def window(dsn: str, fake: FakeHubSpot, object_type: str, lookback: float) -> int:
    """How many records the next night of `object_type` must read: those changed from the stream's
    cursor (its latest landed change) minus the lookback up to the fake's now, each once."""
    ((cursor,),) = rows(dsn, f"select max(updated_at) from raw_hubspot.{object_type} where not is_deleted")
    since = cursor - timedelta(seconds=lookback)
    prop = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
    return sum(1 for r in fake.objects(object_type).values() if since <= parse_time(r["properties"][prop]) <= fake.now)


def test_two_nights_request_only_the_change(
    warehouse: str, fake: FakeHubSpot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = night(warehouse, fake, tmp_path)
    assert first.rows["deals"] == len(served(fake, "deals"))
    for table in OBJECTS:
        assert latest_ids(warehouse, table) == served(fake, table), table
    # every stage entry of a deal is in its doc (re-entries included)
    ((docs,),) = rows(warehouse, "select count(*) from raw_hubspot.deals where doc ? 'propertiesWithHistory'")
    assert docs == len(served(fake, "deals"))
    entries = rows(
        warehouse, "select sum(jsonb_array_length(doc->'propertiesWithHistory'->'dealstage')) from raw_hubspot.deals"
    )
    assert entries[0][0] == sum(len(fake.store.stage_history(fake.drop_id("deals", d))) for d in served(fake, "deals"))
    owners = rows(
        warehouse, "select count(*), count(*) filter (where (doc->>'archived')::boolean) from raw_hubspot.owners"
    )
    assert owners[0][0] == len(fake.store.view()["owners"])
    (links,) = rows(warehouse, "select count(*) from raw_hubspot.associations where record_id like 'deals:%%:contacts'")
    assert links[0] == len(served(fake, "deals"))
    cursor = max(parse_time(d["updatedAt"]) for d in fake.objects("deals").values())

    # the next day: the drop's last day of changes, plus a renamed deal and an archived company
    fake.set_clock(fake.now + timedelta(days=1))
    deal = sorted(served(fake, "deals"))[0]
    fake.change_record("deals", fake.drop_id("deals", deal), {"deal_name": "Переименовано"})
    company = sorted(served(fake, "companies"))[-1]
    fake.archive("accounts", fake.drop_id("accounts", company))
    before = len(fake.requests)
    counter = RequestCounter()
    night(warehouse, fake, tmp_path, counter=counter)
    deal_searches = searches(fake, "deals", before)
    assert len(deal_searches) == 1  # one page: only what changed since the cursor (minus the lookback)
    lower = deal_searches[0]["filterGroups"][0]["filters"][0]
    assert lower["operator"] == "GTE"
    assert int(lower["value"]) == int((cursor - timedelta(seconds=SETTINGS.lookback_seconds)).timestamp() * 1000)
    assert counter.total == len(fake.requests) - before <= 40
    assert not [s for _, _, s in fake.requests if s == 429]  # the client stays under both limits
    for table in OBJECTS:
        assert latest_ids(warehouse, table) == served(fake, table), table
        no_duplicates(warehouse, table)
    assert company not in latest_ids(warehouse, "companies")
    no_duplicates(warehouse, "associations")  # the lookback re-read some deals' links: stored once
    ((name,),) = rows(
        warehouse,
        "select doc->'properties'->>'dealname' from raw_hubspot.deals where record_id = %s "
        "order by updated_at desc limit 1",
        deal,
    )
    assert name == "Переименовано"
    assert "/crm/v3/objects/deals/search" in caplog.text  # the log was captured ...
    assert TOKEN not in caplog.text  # ... and holds no token


@pytest.mark.slow
def test_more_than_ten_thousand_records_at_one_timestamp(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    """A bulk import: 10,150 companies with one hs_lastmodifieddate, more than the search serves for
    one query; each lands exactly once, and no request pages past 10,000 (the fake answers 400)."""
    fake.search_requests_per_second = fake.requests_per_second = 1000  # this test is not about the rate
    night(warehouse, fake, tmp_path, FAST)
    fake.set_clock(fake.now + timedelta(minutes=5))
    added = fake.add_companies(10_150)
    due = window(warehouse, fake, "companies", FAST.lookback_seconds)
    assert due >= len(added)
    before = len(fake.requests)
    report = night(warehouse, fake, tmp_path, FAST)
    assert report.rows["companies"] == due  # each read once: none lost, none twice
    assert not [s for _, _, s in fake.requests[before:] if s >= 400]
    ((count, distinct),) = rows(
        warehouse,
        "select count(*), count(distinct record_id) from raw_hubspot.companies where record_id::bigint >= %s",
        min(added),
    )
    assert count == distinct == len(added)
    assert latest_ids(warehouse, "companies") == served(fake, "companies")
    bodies = searches(fake, "companies", before)
    assert all(int(b.get("after") or 0) + b["limit"] <= 10_000 for b in bodies)
    assert any(b["sorts"][0]["propertyName"] == "hs_object_id" for b in bodies)  # drained by id


def test_ties_across_a_page_boundary_and_a_429_mid_paging(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    fake.search_requests_per_second = fake.requests_per_second = 1000
    settings = replace(FAST, page_limit=3)
    fake.inject_fault("/crm/v3/objects/contacts/search", "429", after=1)  # on page 2
    fake.inject_fault("/crm/v4/associations/deals/contacts/batch/read", "429")
    night(warehouse, fake, tmp_path, settings)
    contacts = served(fake, "contacts")
    assert latest_ids(warehouse, "contacts") == contacts
    statuses = [s for p, _, s in fake.requests if p == SEARCH.format("contacts")]
    assert 429 in statuses and statuses[-1] == 200
    assert latest_ids(warehouse, "deals") == served(fake, "deals")

    # five contacts changed at the same millisecond: they span pages of 3 of the next night
    fake.set_clock(fake.now + timedelta(hours=1))
    tied = sorted(contacts)[:5]
    for cid in tied:
        fake.change_record("contacts", fake.drop_id("contacts", cid), {"job_title": "CEO"})
    due = window(warehouse, fake, "contacts", settings.lookback_seconds)
    report = night(warehouse, fake, tmp_path, settings)
    assert report.rows["contacts"] == due  # each read once: none lost, none twice
    ceo = "select distinct record_id from raw_hubspot.contacts where doc->'properties'->>'jobtitle' = 'CEO'"
    assert {r[0] for r in rows(warehouse, ceo)} == set(tied)
    no_duplicates(warehouse, "contacts")
    ((versions,),) = rows(warehouse, "select count(*) from raw_hubspot.contacts where updated_at = %s", fake.now)
    assert versions == 5  # each landed once


def test_archived_deal_lands_as_a_deletion(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    fake.search_requests_per_second = fake.requests_per_second = 1000
    night(warehouse, fake, tmp_path, FAST)
    fake.set_clock(fake.now + timedelta(hours=2))
    deal = sorted(served(fake, "deals"))[1]
    fake.archive("deals", fake.drop_id("deals", deal))
    night(warehouse, fake, tmp_path, FAST)
    got = rows(
        warehouse,
        "select is_deleted, updated_at, doc->>'archived' from raw_hubspot.deals where record_id = %s "
        "order by updated_at",
        deal,
    )
    assert got[-1] == (True, fake.now, "true")
    assert deal not in latest_ids(warehouse, "deals")
    night(warehouse, fake, tmp_path, FAST)  # read again: not landed twice
    no_duplicates(warehouse, "deals")
    assert len(rows(warehouse, "select 1 from raw_hubspot.deals where record_id = %s and is_deleted", deal)) == 1


def test_crash_mid_extract_then_resume(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    fake.search_requests_per_second = fake.requests_per_second = 1000
    settings = replace(FAST, page_limit=2)
    fake.inject_fault("/crm/v3/objects/deals/batch/read", "drop", after=2, count=10)  # the connection drops
    with pytest.raises(Exception) as crash:
        night(warehouse, fake, tmp_path, settings)
    assert "hubspot_test" in str(crash.value)
    fake.faults.clear()
    night(warehouse, fake, tmp_path, settings)
    for table in (*OBJECTS, "associations"):
        no_duplicates(warehouse, table)
    for table in OBJECTS:
        assert latest_ids(warehouse, table) == served(fake, table), table
    ((versions,),) = rows(warehouse, "select count(*) from raw_hubspot.deals")
    assert versions == len(served(fake, "deals"))


def test_a_late_indexed_record_is_read_by_the_lookback(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    """Search is eventually consistent: a change the index shows only after later ones is read the
    next night, because each night re-reads the lookback window before its cursor."""
    fake.search_requests_per_second = fake.requests_per_second = 1000
    night(warehouse, fake, tmp_path, FAST)
    fake.set_clock(fake.now + timedelta(hours=1))
    late, later = sorted(served(fake, "contacts"))[:2]
    fake.change_record("contacts", fake.drop_id("contacts", late), {"job_title": "Поздний"})
    fake.delay_indexing("contacts", int(late), seconds=120)
    fake.set_clock(fake.now + timedelta(seconds=60))
    fake.change_record("contacts", fake.drop_id("contacts", later), {"job_title": "Ранний"})
    fake.set_clock(fake.now + timedelta(seconds=1))
    night(warehouse, fake, tmp_path, FAST)  # the late change is not searchable yet; the later one is
    title = (
        "select doc->'properties'->>'jobtitle' from raw_hubspot.contacts where record_id = %s "
        "order by updated_at desc limit 1"
    )
    assert rows(warehouse, title, later) == [("Ранний",)]
    assert rows(warehouse, title, late) != [("Поздний",)]
    fake.set_clock(fake.now + timedelta(minutes=5))
    night(warehouse, fake, tmp_path, FAST)
    assert rows(warehouse, title, late) == [("Поздний",)]
    no_duplicates(warehouse, "contacts")


@pytest.mark.parametrize("when", ["between search and batch read", "on a page still to come"])
def test_a_record_updated_during_a_sync(warehouse: str, fake: FakeHubSpot, tmp_path: Path, when: str) -> None:
    """A change made while the night reads is landed that night or the next, never twice, and no
    version with a change time past the extraction's start is landed (the cursor stays at or before it)."""
    fake.search_requests_per_second = fake.requests_per_second = 1000
    settings = replace(FAST, page_limit=3)
    started = fake.now
    if when == "between search and batch read":  # a deal the search served, changed before its batch read
        object_type, entity = "deals", "deals"
        target = min(fake.objects("deals").values(), key=lambda d: d["properties"]["hs_lastmodifieddate"])["id"]
        path = "/crm/v3/objects/deals/search"
    else:  # the most recently changed contact, on the last page, changed while the first page is served
        object_type, entity = "contacts", "contacts"
        target = max(fake.objects("contacts").values(), key=lambda c: c["properties"]["lastmodifieddate"])["id"]
        path = "/crm/v3/objects/contacts/search"

    def change(f: FakeHubSpot) -> None:
        f.set_clock(started + timedelta(seconds=5))
        f.change_record(
            entity, f.drop_id(entity, target), {"deal_name" if entity == "deals" else "job_title": "Во время"}
        )

    fake.on_request(path, 1, change)
    night(warehouse, fake, tmp_path, settings)  # started_at = `started`
    ((latest,),) = rows(warehouse, f"select max(updated_at) from raw_hubspot.{object_type}")
    assert latest <= started  # nothing past the extraction's start: the cursor stays at or before it
    during = rows(warehouse, f"select count(*) from raw_hubspot.{object_type} where doc::text like '%%Во время%%'")
    assert during == [(0,)]
    fake.set_clock(started + timedelta(minutes=1))
    night(warehouse, fake, tmp_path, settings)
    assert rows(warehouse, f"select count(*) from raw_hubspot.{object_type} where doc::text like '%%Во время%%'") == [
        (1,)
    ]
    assert latest_ids(warehouse, object_type) == served(fake, object_type)
    no_duplicates(warehouse, object_type)


def test_wrong_token_names_the_connection_never_the_token(
    warehouse: str, fake: FakeHubSpot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "pat-eu1-wrong-token-0d4b7a"
    with pytest.raises(Exception) as failure:
        night(warehouse, fake, tmp_path, token=wrong)
    chain = list(_chain(failure.value))
    text = " ".join(f"{e!s} {e!r}" for e in chain)
    assert "hubspot_test" in text and "401" in text
    assert any(isinstance(e, HubSpotRefused) and isinstance(e, SourceRefused) for e in chain)
    assert wrong not in text and wrong not in caplog.text
    assert len(fake.requests) == 1  # a refused token is not retried


def test_a_missing_scope_is_refused(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    fake.missing_scopes.add("deals")
    with pytest.raises(Exception) as failure:
        night(warehouse, fake, tmp_path)
    chain = list(_chain(failure.value))
    assert any(isinstance(e, HubSpotRefused) and "403" in str(e) and "MISSING_SCOPES" in str(e) for e in chain)
    assert any(isinstance(e, HubSpotError) for e in chain)


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_a_pipeline_first_landed_is_dated_by_its_creation(warehouse: str, fake: FakeHubSpot, tmp_path: Path) -> None:
    """A first sync dates each pipeline and owner at its `createdAt` (a pipeline edited after the night's
    cutoff still exists before it); a later change is dated by its `updatedAt`."""
    stages = iter(fake.store.current("stages"))
    fake.change_record("stages", next(stages), {"stage_name": "Edited before the first sync"})
    fake.set_clock(fake.now + timedelta(minutes=1))
    pipelines = {p["id"]: p for p in fake.store.view()["pipelines"]}
    assert any(parse_time(p["updatedAt"]) > parse_time(p["createdAt"]) for p in pipelines.values())
    night(warehouse, fake, tmp_path)
    landed = dict(rows(warehouse, "select record_id, updated_at from raw_hubspot.pipelines"))
    assert landed == {key: parse_time(p["createdAt"]) for key, p in pipelines.items()}
    ((owners_at_creation,),) = rows(
        warehouse, "select bool_and(updated_at = (doc->>'createdAt')::timestamptz) from raw_hubspot.owners"
    )
    assert owners_at_creation

    fake.set_clock(fake.now + timedelta(hours=1))
    fake.change_record("stages", next(stages), {"stage_name": "Renamed"})
    fake.set_clock(fake.now + timedelta(minutes=1))
    night(warehouse, fake, tmp_path)
    ((newest,),) = rows(warehouse, "select max(updated_at) from raw_hubspot.pipelines")
    assert newest == fake.now - timedelta(minutes=1)  # the change, by its updatedAt
