"""The Stripe fake answers as the documented API v1 does: list shapes, `starting_after` / `ending_before`
paging newest first, `limit` 1..100, filters, expansions, the pinned `Stripe-Version`, auth errors,
its rate limit, 30 days of events, faults, and a clock that only moves when told."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from b2b_pipeline.sources.stripe.fake import (
    API_VERSION,
    FakeStripe,
    billing_interval,
    epoch,
    minor_exponent,
    minor_units,
    read_billing,
    stripe_id,
)

from .conftest import API_KEY

HEADERS = {"Authorization": f"Bearer {API_KEY}", "Stripe-Version": API_VERSION}


@pytest.fixture
def fake(stripe_drop: Path) -> Iterator[FakeStripe]:
    with FakeStripe(stripe_drop, api_key=API_KEY, requests_per_second=1000) as f:
        yield f


def get(fake: FakeStripe, path: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(
        fake.base_url + path, params=params, headers=HEADERS if headers is None else headers, timeout=10
    )


def all_pages(fake: FakeStripe, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow `starting_after` until `has_more` is false."""
    out: list[dict[str, Any]] = []
    while True:
        body = get(fake, path, **params).json()
        assert body["object"] == "list" and body["url"] == path
        out.extend(body["data"])
        if not body["has_more"]:
            return out
        params["starting_after"] = body["data"][-1]["id"]


def latest(rows: list[dict[str, Any]], key: str, fake: FakeStripe) -> dict[str, dict[str, Any]]:
    """Each record's latest row as of the fake's clock (a later file or line wins a tie)."""
    out: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: epoch(r["updated_at"]) or 0):
        if (epoch(row["updated_at"]) or 0) <= fake.store.now:
            out[row[key]] = row
    return out


def test_lists_carry_the_drop(fake: FakeStripe, stripe_drop: Path) -> None:
    drop = read_billing(stripe_drop)
    customers = {c["id"]: c for c in all_pages(fake, "/v1/customers", limit=100, **{"expand[]": "data.tax_ids"})}
    want = latest(drop["customers"], "customer_id", fake)
    assert set(customers) == {stripe_id("customers", k) for k in want}
    for key, row in want.items():
        c = customers[stripe_id("customers", key)]
        assert c["object"] == "customer" and c["name"] == row["name"]
        assert c["metadata"].get("crm_account_id") == (row.get("crm_account_id") or None)
        assert [t["value"] for t in c["tax_ids"]["data"]] == ([row["tax_id"]] if row.get("tax_id") else [])
        assert (c["email"] or "@").split("@")[1] == (row.get("email_domain") or "")
        assert c["currency"] == row["currency"].lower()
    subs = all_pages(fake, "/v1/subscriptions", limit=100, status="all")
    want = latest(drop["subscriptions"], "subscription_id", fake)
    assert {s["id"] for s in subs} == {stripe_id("subscriptions", k) for k in want}
    for s in subs:
        row = want[fake.drop_id("subscriptions", s["id"])]
        item = s["items"]["data"][0]
        recurring = item["price"]["recurring"]
        months = 12 if recurring["interval"] == "year" else recurring["interval_count"]
        mrr = Decimal(item["price"]["unit_amount"] * item["quantity"]) / months / 10 ** minor_exponent(s["currency"])
        assert (
            mrr == Decimal(row["mrr_amount"].replace(",", ".")) and s["status"] == row["status"]
        )  # exact: no rounding
        assert (item["current_period_start"], recurring["interval"]) and s["customer"].startswith("cus_")
    assert {billing_interval(s["id"])[0] for s in subs} == {"year", "month"}
    invoices = all_pages(fake, "/v1/invoices", limit=100)
    want = latest(drop["invoices"], "invoice_id", fake)
    assert {i["id"] for i in invoices} == {stripe_id("invoices", k) for k in want}
    statuses = {i["status"] for i in invoices}
    assert {"paid", "open"} <= statuses and statuses <= {"draft", "open", "paid", "void", "uncollectible"}
    for i in invoices:
        row = want[fake.drop_id("invoices", i["id"])]
        assert i["total"] == minor_units(row["amount_total"], row["currency"]) and i["currency"].islower()
        assert i["metadata"].get("deal_id") == (row.get("deal_id") or None)
        assert (i["status_transitions"]["paid_at"] is not None) == (row["status"] == "paid")
        subscription = (i["parent"] or {}).get("subscription_details", {}).get("subscription")
        assert subscription == (
            stripe_id("subscriptions", row["subscription_id"]) if row.get("subscription_id") else None
        )
        assert "subscription" not in i  # Basil: the subscription is under `parent`


def test_paging_newest_first_limits_and_cursors(fake: FakeStripe) -> None:
    everything = all_pages(fake, "/v1/invoices", limit=100)
    assert len(everything) > 20
    keys = [(i["created"], i["id"]) for i in everything]
    assert keys == sorted(keys, reverse=True)  # newest first
    default = get(fake, "/v1/invoices").json()
    assert len(default["data"]) == 10 and default["has_more"]  # the default limit is 10
    paged = all_pages(fake, "/v1/invoices", limit=7)
    assert [i["id"] for i in paged] == [i["id"] for i in everything]
    one = get(fake, "/v1/invoices", limit=1).json()
    assert len(one["data"]) == 1 and one["data"][0]["id"] == everything[0]["id"]
    last = get(fake, "/v1/invoices", limit=100, starting_after=everything[-2]["id"]).json()
    assert [i["id"] for i in last["data"]] == [everything[-1]["id"]] and last["has_more"] is False
    before = get(fake, "/v1/invoices", limit=3, ending_before=everything[5]["id"]).json()
    assert [i["id"] for i in before["data"]] == [i["id"] for i in everything[2:5]] and before["has_more"]
    for bad in (0, 101):
        r = get(fake, "/v1/invoices", limit=bad)
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    both = get(fake, "/v1/invoices", starting_after=everything[0]["id"], ending_before=everything[3]["id"])
    assert both.status_code == 400 and both.json()["error"]["type"] == "invalid_request_error"
    missing = get(fake, "/v1/invoices", starting_after="in_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


def test_filters_and_expansions(fake: FakeStripe) -> None:
    every = all_pages(fake, "/v1/subscriptions", limit=100, status="all")
    default = all_pages(fake, "/v1/subscriptions", limit=100)  # without status: none canceled
    assert {s["id"] for s in default} == {s["id"] for s in every if s["status"] != "canceled"}
    assert any(s["status"] == "canceled" for s in every)
    ended = all_pages(fake, "/v1/subscriptions", limit=100, status="ended")
    assert {s["id"] for s in ended} == {s["id"] for s in every if s["status"] in ("canceled", "incomplete_expired")}
    paid = all_pages(fake, "/v1/invoices", limit=100, status="paid")
    assert paid and all(i["status"] == "paid" for i in paid)
    customer = paid[0]["customer"]
    theirs = all_pages(fake, "/v1/invoices", limit=100, customer=customer)
    assert theirs and all(i["customer"] == customer for i in theirs)
    created = sorted(i["created"] for i in all_pages(fake, "/v1/invoices", limit=100))
    middle = created[len(created) // 2]
    newer = all_pages(fake, "/v1/invoices", limit=100, **{"created[gt]": middle})
    assert len(newer) == sum(1 for c in created if c > middle)
    plain = get(fake, "/v1/customers", limit=100).json()["data"]
    assert plain and all("tax_ids" not in c for c in plain)  # not included unless expanded
    one = get(fake, f"/v1/customers/{plain[0]['id']}", **{"expand[]": "tax_ids"}).json()
    assert one["tax_ids"]["object"] == "list"
    assert get(fake, "/v1/customers", **{"expand[]": "data.nothing"}).status_code == 400
    assert get(fake, "/v1/customers/cus_unknown").json()["error"]["message"] == "No such customer: 'cus_unknown'"


def test_the_version_is_pinned_and_the_key_checked(fake: FakeStripe) -> None:
    r = get(fake, "/v1/customers")
    assert r.status_code == 200 and r.headers["Stripe-Version"] == API_VERSION and r.headers["Request-Id"]
    for version in (None, "2020-08-27"):
        headers = {"Authorization": f"Bearer {API_KEY}", **({"Stripe-Version": version} if version else {})}
        r = get(fake, "/v1/customers", headers=headers)
        assert r.status_code == 400 and API_VERSION in r.json()["error"]["message"]
    r = get(fake, "/v1/customers", headers={"Stripe-Version": API_VERSION})
    assert r.status_code == 401 and r.json()["error"]["message"].startswith("You did not provide an API key")
    assert r.headers["Www-Authenticate"] == 'Basic realm="Stripe"'
    wrong = "sk_test_notTheKey0000000wxyz"
    r = get(fake, "/v1/customers", headers={"Authorization": f"Bearer {wrong}", "Stripe-Version": API_VERSION})
    assert r.status_code == 401
    assert r.json() == {
        "error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****************wxyz"}
    }
    basic = base64.b64encode(f"{API_KEY}:".encode()).decode()  # the key as Basic auth's user name
    assert get(fake, "/v1/customers", headers={"Authorization": f"Basic {basic}", "Stripe-Version": API_VERSION}).ok


def test_the_fake_enforces_its_rate_limit(stripe_drop: Path) -> None:
    with FakeStripe(stripe_drop, api_key=API_KEY, requests_per_second=5) as fake:
        statuses = [get(fake, "/v1/events", limit=1).status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        r = next(get(fake, "/v1/events") for _ in range(3))
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit"
        assert r.headers["Stripe-Should-Retry"] == "true" and "Retry-After" not in r.headers
        time.sleep(1.1)
        assert get(fake, "/v1/events").status_code == 200


def test_events_as_of_the_clock_30_days_kept(fake: FakeStripe) -> None:
    end = fake.now
    events = all_pages(fake, "/v1/events", limit=100)
    assert events and all(e["created"] >= int((end - timedelta(days=30)).timestamp()) for e in events)
    keys = [e["created"] for e in events]
    assert keys == sorted(keys, reverse=True)
    assert all(e["object"] == "event" and e["api_version"] == API_VERSION for e in events)
    assert all("tax_ids" not in e["data"]["object"] for e in events)  # an event's object is not expanded
    assert parsedate_to_datetime(get(fake, "/v1/events").headers["Date"]) == end  # the service's clock
    fake.set_clock(end - timedelta(days=60))
    older = all_pages(fake, "/v1/events", limit=100)
    assert older and not {e["id"] for e in older} & {e["id"] for e in events}
    fake.set_clock(end + timedelta(days=45))
    assert all_pages(fake, "/v1/events", limit=100) == []  # nothing happened in the last 30 days
    invoices = all_pages(fake, "/v1/events", limit=100, type="invoice.*")
    assert invoices == []
    fake.set_clock(end)
    paid = all_pages(fake, "/v1/events", limit=100, **{"types[]": ["invoice.paid", "invoice.voided"]})
    assert all(e["type"] in ("invoice.paid", "invoice.voided") for e in paid)
    assert get(fake, "/v1/events", type="invoice.*", **{"types[]": "invoice.paid"}).status_code == 400


def test_clock_changes_and_deletion(fake: FakeStripe) -> None:
    end = fake.now
    full = len(all_pages(fake, "/v1/invoices", limit=100))
    fake.set_clock(end - timedelta(days=200))
    assert len(all_pages(fake, "/v1/invoices", limit=100)) < full
    fake.set_clock(end + timedelta(hours=1))
    assert len(all_pages(fake, "/v1/invoices", limit=100)) == full
    subs = all_pages(fake, "/v1/subscriptions", limit=100)
    customer = next(s["customer"] for s in subs if s["status"] in ("active", "past_due", "trialing"))
    r = requests.post(
        fake.base_url + "/_admin/records",
        json={"entity": "customers", "id": fake.drop_id("customers", customer), "set": {"name": "Renamed"}},
        timeout=5,
    )
    assert r.json()["id"] == customer
    now = int(fake.now.timestamp())
    changed = all_pages(fake, "/v1/events", limit=100, **{"created[gte]": now})
    assert [(e["type"], e["data"]["object"]["name"], e["data"]["previous_attributes"]) for e in changed] == [
        ("customer.updated", "Renamed", {"name": changed[0]["data"]["previous_attributes"]["name"]})
    ]
    fake.set_clock(fake.now + timedelta(minutes=1))
    fake.change_record("customers", fake.drop_id("customers", customer), delete=True)
    assert customer not in {c["id"] for c in all_pages(fake, "/v1/customers", limit=100)}
    assert get(fake, f"/v1/customers/{customer}").json() == {"id": customer, "object": "customer", "deleted": True}
    latest_events = all_pages(fake, "/v1/events", limit=100, **{"created[gte]": now + 60})
    kinds = {e["type"] for e in latest_events}
    assert "customer.deleted" in kinds and "customer.subscription.deleted" in kinds  # its subscriptions end
    theirs = all_pages(fake, "/v1/subscriptions", limit=100, status="all", customer=customer)
    assert theirs and all(s["status"] == "canceled" and s["ended_at"] == now + 60 for s in theirs)


def test_faults(fake: FakeStripe) -> None:
    fake.inject_fault("/v1/invoices", "429", after=1, retry_after=2)
    assert get(fake, "/v1/invoices").status_code == 200
    r = get(fake, "/v1/invoices")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert get(fake, "/v1/invoices").status_code == 200
    requests.post(fake.base_url + "/_admin/fault", json={"path": "/v1/invoices", "kind": "503"}, timeout=5)
    r = get(fake, "/v1/invoices")
    assert r.status_code == 503 and r.json()["error"]["type"] == "api_error"
    fake.inject_fault("/v1/invoices", "drop")
    with pytest.raises(requests.ConnectionError):
        get(fake, "/v1/invoices")
    assert get(fake, "/v1/invoices").status_code == 200
    assert fake.request_count("/v1/invoices") == 6 and fake.request_count() == 6


def test_amounts_in_minor_units() -> None:
    assert [
        minor_units(a, c) for a, c in (("1234.56", "RUB"), ("1234,5", "usd"), ("15000", "JPY"), ("5.12", "KWD"))
    ] == [
        123456,
        123450,
        15000,
        5120,
    ]
    assert [minor_exponent(c) for c in ("JPY", "krw", "KWD", "ISK", "HUF", "TWD", "EUR")] == [0, 0, 3, 2, 2, 2, 2]
