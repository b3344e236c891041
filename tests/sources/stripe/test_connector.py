"""The Stripe connector lands the fake's account in a real PostgreSQL: a first night lists everything,
a second night reads the events only, a cursor older than Stripe's 30 days of events re-lists, a
429 mid-paging is retried, a crashed night resumes, a deleted customer lands as a deletion; the key
is never in an error or a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from b2b_pipeline.sources.landing import LandingReport, RequestCounter, SourceRefused, land
from b2b_pipeline.sources.stripe.connector import API_VERSION, StripeError, StripeRefused, StripeSettings, stripe_source
from b2b_pipeline.sources.stripe.fake import API_VERSION as FAKE_VERSION
from b2b_pipeline.sources.stripe.fake import FakeStripe

from .conftest import API_KEY

pytestmark = pytest.mark.integration

SETTINGS = StripeSettings(
    connection_name="stripe_test",
    requests_per_second=18,
    burst=5,
    max_attempts=3,
    backoff_factor=0.05,
    max_delay=2.0,
    timeout=5.0,
)
FAST = replace(SETTINGS, page_limit=3, requests_per_second=200, burst=20)  # small pages, not about the rate
TABLES = ("customers", "subscriptions", "invoices")
LISTS = ("/v1/customers", "/v1/subscriptions", "/v1/invoices")


@pytest.fixture
def fake(stripe_drop: Path) -> Iterator[FakeStripe]:
    with FakeStripe(stripe_drop, api_key=API_KEY, requests_per_second=25) as f:
        f.set_clock(f.now - timedelta(days=1))  # the night before the drop's last change
        yield f


def night(
    dsn: str,
    fake: FakeStripe,
    home: Path,
    settings: StripeSettings = SETTINGS,
    api_key: str = API_KEY,
    counter: RequestCounter | None = None,
) -> LandingReport:
    source = stripe_source(fake.base_url, api_key, settings=settings, counter=counter, started_at=fake.now)
    return land(dsn, "stripe", source, home=home)


def rows(dsn: str, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def served(fake: FakeStripe, table: str) -> dict[str, dict[str, Any]]:
    """The objects the fake serves now, as the connector asks for them (customers with their tax ids)."""
    return {o["id"]: o for o in fake.store.view()[table]}


def latest(dsn: str, table: str) -> dict[str, tuple[dict[str, Any], bool, datetime]]:
    """Each record's latest landed version (as staging picks it): id -> (doc, is_deleted, updated_at in
    Stripe's whole seconds, as staging reports it; the connector orders one second's versions within it)."""
    got = rows(
        dsn,
        f"""select record_id, doc, is_deleted, date_trunc('second', updated_at) from (
                select distinct on (record_id) * from raw_stripe.{table}
                order by record_id, updated_at desc, is_deleted desc, _extracted_at desc) t""",
    )
    return {r[0]: (r[1], r[2], r[3]) for r in got}


def live_docs(dsn: str, table: str) -> dict[str, dict[str, Any]]:
    return {k: doc for k, (doc, deleted, _) in latest(dsn, table).items() if not deleted}


def no_duplicates(dsn: str, table: str) -> None:
    ((total, distinct),) = rows(dsn, f"select count(*), count(distinct (record_id, _version)) from raw_stripe.{table}")
    assert total == distinct


def test_the_version_is_pinned_as_the_fake_renders() -> None:
    assert StripeSettings().api_version == API_VERSION == FAKE_VERSION


def test_first_night_lists_then_events_only(
    warehouse: str, fake: FakeStripe, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = night(warehouse, fake, tmp_path)
    for table in TABLES:
        assert live_docs(warehouse, table) == served(fake, table), table
        no_duplicates(warehouse, table)
    assert first.rows["invoices"] >= len(served(fake, "invoices"))
    assert {p for p, _, _ in fake.requests} == {"/v1/events", *LISTS}
    subscriptions = [q for p, q, _ in fake.requests if p == "/v1/subscriptions"]
    assert all(q["status"] == ["all"] and q["limit"] == ["100"] for q in subscriptions)  # canceled ones too
    customers = [q for p, q, _ in fake.requests if p == "/v1/customers"]
    assert all(q["expand[]"] == ["data.tax_ids"] for q in customers)
    assert any(d["tax_ids"]["data"] for d in live_docs(warehouse, "customers").values())
    # a version's time: never after the fake's clock, so the night's cutoff sees it
    ((newest,),) = rows(warehouse, "select max(updated_at) from raw_stripe.invoices")
    assert newest <= fake.now

    # the next night: a day of the drop's changes, plus a paid invoice, a new MRR and a deleted customer
    fake.set_clock(fake.now + timedelta(days=1))
    drop_invoice = next(
        fake.drop_id("invoices", i["id"]) for i in served(fake, "invoices").values() if i["status"] == "open"
    )
    paid_at = fake.now.isoformat()
    fake.change_record("invoices", drop_invoice, {"status": "paid", "paid_at": paid_at, "amount_paid": "10.00"})
    subscription = sorted(served(fake, "subscriptions"))[0]
    fake.change_record("subscriptions", fake.drop_id("subscriptions", subscription), {"mrr_amount": "4321.00"})
    customer = sorted(served(fake, "customers"))[-1]
    fake.change_record("customers", fake.drop_id("customers", customer), {"name": "ООО «Переименовано»"})
    fake.set_clock(fake.now + timedelta(minutes=5))
    gone = sorted(served(fake, "customers"))[0]
    fake.change_record("customers", fake.drop_id("customers", gone), delete=True)
    fake.set_clock(fake.now + timedelta(hours=2))
    before = len(fake.requests)
    counter = RequestCounter()
    night(warehouse, fake, tmp_path, counter=counter)
    second = fake.requests[before:]
    assert not {p for p, _, _ in second} & set(LISTS)  # no list: the events only ...
    assert {p for p, _, _ in second} == {"/v1/events", f"/v1/customers/{customer}"}  # ... and the changed customer
    assert counter.total == len(second) == 4
    for table in TABLES:
        assert live_docs(warehouse, table) == served(fake, table), table
        no_duplicates(warehouse, table)
    doc, deleted, at = latest(warehouse, "customers")[gone]
    assert deleted and doc["id"] == gone and at == fake.now - timedelta(hours=2)
    doc, _, at = latest(warehouse, "customers")[customer]
    assert doc["name"] == "ООО «Переименовано»" and doc["tax_ids"]["object"] == "list"  # re-fetched, expanded
    sub_doc, _, _ = latest(warehouse, "subscriptions")[subscription]
    item = sub_doc["items"]["data"][0]
    assert item["price"]["unit_amount"] * item["quantity"] == 432100 * (
        12 if item["price"]["recurring"]["interval"] == "year" else item["price"]["recurring"]["interval_count"]
    )
    assert not [s for _, _, s in fake.requests if s == 429]  # the client stays under the fake's 25 a second
    assert "/v1/events" in caplog.text  # the log was captured ...
    assert API_KEY not in caplog.text  # ... and holds no key


def test_a_cursor_older_than_30_days_relists(warehouse: str, fake: FakeStripe, tmp_path: Path) -> None:
    night(warehouse, fake, tmp_path, FAST)
    start = fake.now
    first = served(fake, "subscriptions")
    subs = sorted(first)
    # a change 5 days later (its event is gone by the next night) and one 35 days later (kept)
    fake.set_clock(start + timedelta(days=5))
    fake.change_record("subscriptions", fake.drop_id("subscriptions", subs[0]), {"mrr_amount": "777.00"})
    fake.set_clock(start + timedelta(days=35))
    fake.change_record("subscriptions", fake.drop_id("subscriptions", subs[1]), {"plan": "Новый план"})
    fake.set_clock(start + timedelta(days=40))
    before = len(fake.requests)
    night(warehouse, fake, tmp_path, FAST)
    assert set(LISTS) <= {p for p, _, _ in fake.requests[before:]}  # the cursor was stale: listed whole
    for table in TABLES:
        assert live_docs(warehouse, table) == served(fake, table), table  # nothing lost
        no_duplicates(warehouse, table)
    got = latest(warehouse, "subscriptions")
    # the change whose event was kept: dated by it; the other: after the old cursor, before now
    assert got[subs[1]][2] == start + timedelta(days=35)
    assert start - timedelta(seconds=2) <= got[subs[0]][2] < start + timedelta(days=5)
    # a record unchanged since the first night keeps its one version (the re-list adds none)
    counts = dict(rows(warehouse, "select record_id, count(*) from raw_stripe.subscriptions group by 1"))
    unchanged = [k for k, doc in served(fake, "subscriptions").items() if doc == first[k]]
    assert unchanged and all(counts[k] == 1 for k in unchanged)
    assert counts[subs[0]] == 2


def test_429_mid_paging_then_a_crash_resumes(warehouse: str, fake: FakeStripe, tmp_path: Path) -> None:
    fake.requests_per_second = 1000
    fake.inject_fault("/v1/invoices", "429", after=1, retry_after=1)  # page 2 of the invoices
    fake.inject_fault("/v1/subscriptions", "drop", after=1)  # a connection dropped on page 2
    fake.inject_fault("/v1/customers", "503", after=2)
    night(warehouse, fake, tmp_path, FAST)
    statuses = [s for p, _, s in fake.requests if p == "/v1/invoices"]
    assert 429 in statuses and statuses[-1] == 200
    assert 503 in [s for p, _, s in fake.requests if p == "/v1/customers"]
    for table in TABLES:
        assert live_docs(warehouse, table) == served(fake, table), table

    # the next night crashes mid-paging of the events (5xx beyond the retries), then runs again; an
    # event of the very second the night starts waits for the next night: the clock is a minute on
    fake.set_clock(fake.now + timedelta(days=1))
    fake.change_record(
        "subscriptions", fake.drop_id("subscriptions", sorted(served(fake, "subscriptions"))[0]), {"plan": "X"}
    )
    customer = sorted(served(fake, "customers"))[0]  # a change of the stream read before the crash
    fake.change_record("customers", fake.drop_id("customers", customer), {"name": "До сбоя"})
    fake.set_clock(fake.now + timedelta(minutes=1))
    fake.inject_fault("/v1/events", "500", after=1, count=10)
    with pytest.raises(Exception) as crash:
        night(warehouse, fake, tmp_path, FAST)
    assert "stripe_test" in str(crash.value)
    fake.faults.clear()
    night(warehouse, fake, tmp_path, FAST)
    for table in TABLES:
        assert live_docs(warehouse, table) == served(fake, table), table
        no_duplicates(warehouse, table)
    assert live_docs(warehouse, "customers")[customer]["name"] == "До сбоя"
    ((versions,),) = rows(warehouse, "select count(distinct record_id) from raw_stripe.invoices")
    assert versions == len(served(fake, "invoices"))


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.mark.parametrize("refusal", ["wrong key", "restricted key"])
def test_a_refused_key_names_the_connection_never_the_key(
    warehouse: str, stripe_drop: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    caplog.set_level(logging.DEBUG)
    key = "rk_test_51RestrictedKey000000000abcd" if refusal == "restricted key" else "sk_test_wrong0000000000zzzz"
    forbidden = (key,) if refusal == "restricted key" else ()
    with FakeStripe(stripe_drop, api_key=API_KEY, forbidden_keys=forbidden) as fake:
        with pytest.raises(Exception) as failure:
            night(warehouse, fake, tmp_path, api_key=key)
        status = 403 if refusal == "restricted key" else 401
        assert [s for _, _, s in fake.requests] == [status]  # not retried
    errors = list(_chain(failure.value))
    assert any(isinstance(e, StripeRefused) and isinstance(e, SourceRefused) for e in errors)
    text = " ".join(f"{e!s} {e!r}" for e in errors)
    assert "stripe_test" in text and str(status) in text
    assert "/v1/events" in caplog.text
    assert key not in text and key not in caplog.text and key[-4:] not in text


def test_a_bad_request_is_an_error_naming_the_connection(fake: FakeStripe) -> None:
    settings = replace(SETTINGS, api_version="2020-08-27")  # a version the fake does not render
    source = stripe_source(fake.base_url, API_KEY, settings=settings, started_at=fake.now)
    with pytest.raises(Exception) as failure:
        list(source.with_resources("invoices"))
    errors = list(_chain(failure.value))
    assert any(isinstance(e, StripeError) and "400" in str(e) and "stripe_test" in str(e) for e in errors)


def test_a_change_during_a_night_is_dated_by_its_event(warehouse: str, fake: FakeStripe, tmp_path: Path) -> None:
    """While the first night pages the invoices (3 a page), an open invoice is paid (30 s after the
    night started); while the second night pages the events, a subscription changes. Each change
    lands that night or the next, dated by its own time (the paid_at it carries, or its event), the
    cursors never pass the night's start, and nothing lands twice."""
    fake.requests_per_second = 1000
    start = fake.now
    invoice = next(i["id"] for i in fake.store.view()["invoices"][6:] if i["status"] == "open")  # page 3 or later

    def pay(f: FakeStripe) -> None:
        f.set_clock(start + timedelta(seconds=30))
        at = f.now.isoformat()
        f.change_record("invoices", f.drop_id("invoices", invoice), {"status": "paid", "paid_at": at})

    fake.on_request("/v1/invoices", 1, pay)
    night(warehouse, fake, tmp_path, FAST)
    doc, _, at = latest(warehouse, "invoices")[invoice]
    assert doc["status"] == "paid" and at == start + timedelta(seconds=30)  # read on a later page: its paid_at

    second = start + timedelta(days=1, minutes=1)
    fake.set_clock(second)
    subscription = sorted(served(fake, "subscriptions"))[0]

    def change(f: FakeStripe) -> None:
        f.set_clock(second + timedelta(seconds=30))
        f.change_record("subscriptions", f.drop_id("subscriptions", subscription), {"plan": "Во время выгрузки"})

    fake.on_request("/v1/events", 2, change)  # the subscriptions' first page of events
    night(warehouse, fake, tmp_path, FAST)
    doc, _, _ = latest(warehouse, "subscriptions")[subscription]
    assert doc["items"]["data"][0]["price"]["nickname"] != "Во время выгрузки"  # after the night's start: next night
    fake.set_clock(second + timedelta(days=1))
    night(warehouse, fake, tmp_path, FAST)
    doc, _, at = latest(warehouse, "subscriptions")[subscription]
    assert doc["items"]["data"][0]["price"]["nickname"] == "Во время выгрузки" and at == second + timedelta(seconds=30)
    for table in TABLES:
        assert live_docs(warehouse, table) == served(fake, table), table
        no_duplicates(warehouse, table)


def test_events_of_one_second_keep_their_order(warehouse: str, fake: FakeStripe, tmp_path: Path) -> None:
    """An invoice finalized and paid within one second (Stripe's events are whole seconds, served newest
    first): the latest version, as the staging models pick it, is the paid one."""
    night(warehouse, fake, tmp_path)
    fake.set_clock(fake.now + timedelta(hours=1))
    invoice = next(i["id"] for i in served(fake, "invoices").values() if i["status"] == "open")
    drop_invoice = fake.drop_id("invoices", invoice)
    fake.change_record("invoices", drop_invoice, {"amount_total": "11.00"})
    fake.change_record("invoices", drop_invoice, {"status": "uncollectible"})
    fake.change_record(
        "invoices", drop_invoice, {"status": "paid", "paid_at": fake.now.isoformat(), "amount_paid": "11.00"}
    )
    fake.set_clock(fake.now + timedelta(minutes=5))
    night(warehouse, fake, tmp_path)
    ((same_second,),) = rows(
        warehouse,
        "select count(distinct _version) from raw_stripe.invoices where record_id = %s and updated_at >= %s",
        invoice,
        fake.now - timedelta(minutes=5),
    )
    assert same_second == 3  # three versions, one second
    doc, deleted, _ = latest(warehouse, "invoices")[invoice]
    assert (doc["status"], doc["amount_paid"], deleted) == ("paid", 1100, False)
