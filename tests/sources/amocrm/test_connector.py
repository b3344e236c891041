"""The amoCRM connector lands the fake's account in a real PostgreSQL: two nights, paging with ties,
a 429 mid-paging, a crash then a resumed run, a wrong token; the token never in logs or errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from b2b_pipeline.sources.amocrm.connector import AmoCRMError, AmoCRMSettings, amocrm_source
from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM
from b2b_pipeline.sources.landing import LandingReport, RequestCounter, land

from .conftest import TOKEN

SETTINGS = AmoCRMSettings(
    connection_name="amocrm_test",
    tax_id_field="ИНН",
    web_field="WEB",
    lookback_seconds=600,
    max_attempts=3,
    backoff_factor=0.05,
    max_delay=2.0,
    timeout=5.0,
)


@pytest.fixture
def fake(amo_drop: Path) -> Iterator[FakeAmoCRM]:
    with FakeAmoCRM(amo_drop, token=TOKEN, requests_per_second=7, company_field_ids={"tax_id": 555123}) as f:
        f.set_clock(f.now - timedelta(days=1))  # the night before the drop's last day
        yield f


def night(
    dsn: str,
    fake: FakeAmoCRM,
    home: Path,
    settings: AmoCRMSettings = SETTINGS,
    token: str = TOKEN,
    counter: RequestCounter | None = None,
) -> LandingReport:
    source = amocrm_source(fake.base_url, token, settings=settings, counter=counter, started_at=fake.now)
    return land(dsn, "amocrm", source, home=home)


def rows(dsn: str, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def served(fake: FakeAmoCRM, name: str) -> set[int]:
    return {item["id"] for item in fake.store.view()[name]}


def no_duplicates(dsn: str, table: str) -> None:
    ((total, distinct),) = rows(dsn, f"select count(*), count(distinct (record_id, _version)) from raw_amocrm.{table}")
    assert total == distinct


def latest_ids(dsn: str, table: str) -> set[int]:
    """Records whose latest landed version is not a deletion (what staging would keep)."""
    got = rows(
        dsn,
        f"""select record_id from (select distinct on (record_id) record_id, is_deleted
                        from raw_amocrm.{table} order by record_id, updated_at desc, is_deleted desc) t
                        where not is_deleted""",
    )
    return {int(r[0]) for r in got}


def test_two_nights_request_only_the_change(
    warehouse: str, fake: FakeAmoCRM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = night(warehouse, fake, tmp_path)
    assert first.rows["leads"] == len(served(fake, "leads"))
    for table, name in (("leads", "leads"), ("companies", "companies"), ("contacts", "contacts"), ("tasks", "tasks")):
        assert latest_ids(warehouse, table) == served(fake, name)
    ((roles,),) = rows(warehouse, "select doc from raw_amocrm.field_roles")
    assert roles["tax_id"] == 555123 and roles["web"] == 1_264_011
    cursor = max(item["updated_at"] for item in fake.store.view()["leads"])  # the leads cursor after night 1

    # the next day: the drop's last day of changes, plus a renamed deal and a deleted company
    fake.set_clock(fake.now + timedelta(days=1))
    lead = sorted(served(fake, "leads"))[0]
    fake.change_record("deals", fake.drop_id("deals", lead), {"deal_name": "Переименовано"})
    company = sorted(served(fake, "companies"))[-1]
    fake.change_record("accounts", fake.drop_id("accounts", company), delete=True)
    before = len(fake.requests)
    counter = RequestCounter()
    night(warehouse, fake, tmp_path, counter=counter)
    second = fake.requests[before:]
    lead_calls = [q for p, q, _ in second if p == "/api/v4/leads"]
    assert len(lead_calls) == 1  # one page: only what changed since the cursor (minus the lookback)
    assert int(lead_calls[0]["filter[updated_at][from]"][0]) == cursor - SETTINGS.lookback_seconds
    assert counter.total == len(second) <= 14
    assert not [s for _, _, s in fake.requests if s in (429, 403)]  # the client stays under 7 a second
    for table, name in (("leads", "leads"), ("companies", "companies"), ("contacts", "contacts"), ("tasks", "tasks")):
        assert latest_ids(warehouse, table) == served(fake, name)
        no_duplicates(warehouse, table)
    assert company not in latest_ids(warehouse, "companies")
    ((name,),) = rows(
        warehouse,
        """select doc->>'name' from raw_amocrm.leads where record_id = %s
                                  order by updated_at desc limit 1""",
        str(lead),
    )
    assert name == "Переименовано"
    history = rows(warehouse, "select count(*) from raw_amocrm.events where doc->>'type' like 'lead_%%'")
    assert history[0][0] == sum(1 for e in fake.store.view()["events"] if e["type"].startswith("lead_"))
    assert "/api/v4/leads" in caplog.text  # the log was captured (urllib3 logs each request at DEBUG) ...
    assert TOKEN not in caplog.text  # ... and holds no token


def test_ties_across_a_page_boundary_429_timeout_malformed(warehouse: str, fake: FakeAmoCRM, tmp_path: Path) -> None:
    settings = replace(SETTINGS, page_limit=3, timeout=1.0, requests_per_second=100, burst=10)
    fake.requests_per_second = 1000  # small pages make many requests: this test is not about the rate
    fake.inject_fault("/api/v4/contacts", "429", after=1, retry_after=1)  # on page 2
    fake.inject_fault("/api/v4/tasks", "timeout", hang_seconds=1.5)
    fake.inject_fault("/api/v4/companies", "malformed")
    night(warehouse, fake, tmp_path, settings)
    contacts = served(fake, "contacts")
    assert latest_ids(warehouse, "contacts") == contacts
    assert latest_ids(warehouse, "tasks") == served(fake, "tasks")
    assert latest_ids(warehouse, "companies") == served(fake, "companies")
    statuses = [s for p, _, s in fake.requests if p == "/api/v4/contacts"]
    assert 429 in statuses and statuses[-1] in (200, 204)
    assert 504 in [s for p, _, s in fake.requests if p == "/api/v4/tasks"]

    # five contacts changed in the same second: they span pages of 3 of the next night
    fake.set_clock(fake.now + timedelta(hours=1))
    tied = sorted(contacts)[:5]
    for cid in tied:
        fake.change_record("contacts", fake.drop_id("contacts", cid), {"job_title": "CEO"})
    night(warehouse, fake, tmp_path, settings)
    ceo = "select record_id from raw_amocrm.contacts where doc::text like '%%CEO%%'"
    assert {int(r[0]) for r in rows(warehouse, ceo)} == set(tied)
    # one more change in that same second, visible only after the night read it: the next night gets it
    late = sorted(contacts)[5]
    fake.change_record("contacts", fake.drop_id("contacts", late), {"job_title": "CEO"})
    night(warehouse, fake, tmp_path, settings)
    assert {int(r[0]) for r in rows(warehouse, ceo)} == {*tied, late}
    no_duplicates(warehouse, "contacts")


def test_crash_mid_extract_then_resume(warehouse: str, fake: FakeAmoCRM, tmp_path: Path) -> None:
    settings = replace(SETTINGS, page_limit=2, requests_per_second=100, burst=10)
    fake.requests_per_second = 1000  # small pages make many requests: this test is not about the rate
    fake.inject_fault("/api/v4/leads", "500", after=1, count=10)
    with pytest.raises(Exception) as crash:
        night(warehouse, fake, tmp_path, settings)
    assert "amocrm_test" in str(crash.value)
    fake.faults.clear()
    night(warehouse, fake, tmp_path, settings)
    for table in ("leads", "companies", "contacts", "tasks", "events"):
        no_duplicates(warehouse, table)
    assert latest_ids(warehouse, "leads") == served(fake, "leads")
    ((versions,),) = rows(warehouse, "select count(*) from raw_amocrm.leads")
    assert versions == len(served(fake, "leads"))


def test_wrong_token_names_the_connection_never_the_token(
    warehouse: str, fake: FakeAmoCRM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-0d4b7a"
    with pytest.raises(Exception) as failure:
        night(warehouse, fake, tmp_path, token=wrong)
    chain, exc = [], failure.value
    while exc is not None:
        chain.append(f"{exc!s} {exc!r}")
        exc = exc.__cause__ or exc.__context__
    text = " ".join(chain)
    assert "amocrm_test" in text and "401" in text
    assert any(isinstance(e, AmoCRMError) for e in _chain(failure.value))
    assert "/api/v4/" in caplog.text  # the log was captured ...
    assert wrong not in text and wrong not in caplog.text


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_blocked_client_403_is_a_clear_error(amo_drop: Path) -> None:
    """After repeated abuse amoCRM answers 403: not retried, an error naming the connection."""
    settings = replace(SETTINGS, requests_per_second=100, burst=10, max_attempts=2)
    with FakeAmoCRM(amo_drop, token=TOKEN, requests_per_second=1, abuse_threshold=1, block_seconds=60) as fake:
        source = amocrm_source(fake.base_url, TOKEN, settings=settings, started_at=fake.now)
        for _ in range(4):  # another client of the account abuses the limit: the account blocks it
            requests.get(fake.base_url + "/api/v4/users", timeout=5)
        with pytest.raises(Exception) as failure:
            list(source.with_resources("users", "tasks"))
        errors = list(_chain(failure.value))
        assert any(isinstance(e, AmoCRMError) and "403" in str(e) and "amocrm_test" in str(e) for e in errors)
        assert 403 in [s for _, _, s in fake.requests]
        assert TOKEN not in " ".join(str(e) for e in errors)


def latest_docs(dsn: str, table: str) -> dict[int, dict[str, Any]]:
    """The latest landed version of each record that is not a deletion: record id -> doc."""
    got = rows(
        dsn,
        f"""select record_id, doc, is_deleted from (select distinct on (record_id) record_id, doc, is_deleted
                from raw_amocrm.{table} order by record_id, updated_at desc, is_deleted desc, _extracted_at desc) t""",
    )
    return {int(r[0]): r[1] for r in got if not r[2]}


def leads_now(fake: FakeAmoCRM) -> dict[int, dict[str, Any]]:
    """The leads as the connector asks for them (`with=contacts,loss_reason`), as of the fake's clock."""
    return {lead["id"]: lead for lead in fake.store.view()["leads"]}


@pytest.mark.parametrize("later", [0, 90], ids=["stamped-at-the-start", "stamped-after-the-start"])
def test_a_record_updated_during_a_sync(warehouse: str, fake: FakeAmoCRM, tmp_path: Path, later: int) -> None:
    """While the night pages through the leads (3 a page), right after page 1 is served, a lead of
    page 1 is renamed (it moves to the end of the `updated_at` order) and a lead of page 3 changes
    its stage; while it pages through the events another deal changes stage (a new event). The
    changes are stamped with the fake's clock at the extraction start, or 90 s after it. Nothing
    is lost (tonight every record not changed meanwhile lands as of the start; after the next
    night every record's latest landed version is the fake's state), nothing is landed twice, and
    the cursor stays at or before the extraction start, so the next night reads the changes."""
    settings = replace(SETTINGS, page_limit=3, requests_per_second=100, burst=10)
    fake.requests_per_second = 1000  # small pages make many requests: this test is not about the rate
    started = fake.now
    before = leads_now(fake)
    order = sorted(before.values(), key=lambda lead: (lead["updated_at"], lead["id"]))
    assert len(order) > 3 * settings.page_limit
    moved, ahead, staged = order[0]["id"], order[7]["id"], order[-1]["id"]  # page 1, page 3, last page

    def other_stage(lead: int) -> str:
        deal = fake.store.versions["deals"][fake.drop_id("deals", lead)][-1]
        stages = fake.store.versions["stages"].values()
        return next(
            s[-1]["stage_id"]
            for s in stages
            if s[-1]["pipeline_id"] == deal["pipeline_id"] and s[-1]["stage_id"] != deal["stage_id"]
        )

    def during_leads(f: FakeAmoCRM) -> None:
        f.set_clock(started + timedelta(seconds=later))
        f.change_record("deals", f.drop_id("deals", moved), {"deal_name": "Переименована во время выгрузки"})
        f.change_record("deals", f.drop_id("deals", ahead), {"stage_id": other_stage(ahead)})

    def during_events(f: FakeAmoCRM) -> None:
        f.set_clock(started + timedelta(seconds=later))
        f.change_record("deals", f.drop_id("deals", staged), {"stage_id": other_stage(staged)})

    fake.on_request("/api/v4/leads", 1, during_leads)
    fake.on_request("/api/v4/events", 1, during_events)
    night(warehouse, fake, tmp_path, settings)
    changed = {moved, ahead, staged}
    assert leads_now(fake)[moved]["updated_at"] == int(started.timestamp()) + later  # the changes happened
    landed = latest_docs(warehouse, "leads")
    for lead, doc in before.items():
        if lead not in changed:  # not changed during the sync: landed as of the start, none skipped
            assert landed.get(lead) == doc, lead
        else:  # changed meanwhile: as of the start, the change, or (stamped after the start) not yet
            assert landed.get(lead) in (doc, leads_now(fake)[lead], *([None] if later else [])), lead
    for table in ("leads", "companies", "contacts", "tasks", "events"):
        no_duplicates(warehouse, table)
    ((cursor,),) = rows(warehouse, "select max(updated_at) from raw_amocrm.leads")
    assert cursor <= started  # the leads cursor never passes the extraction start
    ((cursor,),) = rows(warehouse, "select max(updated_at) from raw_amocrm.events")
    assert cursor <= started

    # the next night reads every change made during the first one
    fake.set_clock(started + timedelta(days=1))
    calls = len(fake.requests)
    night(warehouse, fake, tmp_path, settings)
    first = next(q for p, q, _ in fake.requests[calls:] if p == "/api/v4/leads")
    assert int(first["filter[updated_at][from]"][0]) <= int(started.timestamp())
    assert latest_docs(warehouse, "leads") == leads_now(fake)
    for table in ("leads", "companies", "contacts", "tasks", "events"):
        no_duplicates(warehouse, table)
    events = {e["id"] for e in fake.store.view()["events"]}
    assert {r[0] for r in rows(warehouse, "select record_id from raw_amocrm.events")} == events


def test_a_record_leaving_mid_pass_hides_no_other(warehouse: str, fake: FakeAmoCRM, tmp_path: Path) -> None:
    """The id-ordered passes (`_Api.by_id`): five contacts changed in one second (more than a page of
    3, so the second is read by id), and every task (tasks cannot be ordered by updated_at, so they
    are read by id over the whole window). While page 1 of each is being served, one record of page
    1 changes after the extraction start: it leaves the window and every later record moves up one
    place, so that pass misses one. The next pass reads it: every record not changed meanwhile lands
    tonight."""
    settings = replace(SETTINGS, page_limit=3, requests_per_second=100, burst=10)
    fake.requests_per_second = 1000  # small pages make many requests: this test is not about the rate
    fake.set_clock(fake.now + timedelta(hours=1))
    tied = sorted(served(fake, "contacts"))[:5]
    for cid in tied:
        fake.change_record("contacts", fake.drop_id("contacts", cid), {"job_title": "CEO"})
    started = fake.now
    tasks = sorted(served(fake, "tasks"))
    assert len(tasks) > 2 * settings.page_limit

    def leaves(entity: str, drop_id: str, changes: dict[str, str]) -> Any:
        def change(f: FakeAmoCRM) -> None:  # stamped after the start: out of the window [.., start]
            f.set_clock(started + timedelta(seconds=90))
            f.change_record(entity, drop_id, changes)

        return change

    def by_id(query: Any) -> bool:
        return "order[id]" in query

    first_tied = fake.drop_id("contacts", tied[0])
    fake.on_request("/api/v4/contacts", 1, leaves("contacts", first_tied, {"job_title": "CTO"}), where=by_id)
    first_task = fake.drop_id("activities", tasks[0])
    fake.on_request("/api/v4/tasks", 1, leaves("activities", first_task, {"subject": "moved"}), where=by_id)
    source = amocrm_source(fake.base_url, TOKEN, settings=settings, started_at=started)
    land(warehouse, "amocrm", source, home=tmp_path)
    landed_tasks = latest_ids(warehouse, "tasks")
    assert set(tasks[1:]) <= landed_tasks  # none hidden by the task that left the window
    ceo = "select record_id from raw_amocrm.contacts where doc::text like '%%CEO%%'"
    assert set(tied[1:]) <= {int(r[0]) for r in rows(warehouse, ceo)}
    ids_passes = [q for p, q, _ in fake.requests if p == "/api/v4/tasks" and "order[id]" in q]
    assert ids_passes and all("order[updated_at]" not in q for p, q, _ in fake.requests if p == "/api/v4/tasks")
    for table in ("contacts", "tasks"):
        no_duplicates(warehouse, table)
