"""The HubSpot fake answers as the documented API does (docs/research/hubspot-api.md): shapes that carry
the drop, list paging, search filters, sorting, paging and its 10,000-result cap, batch reads with
stage history, v4 associations with labels, owners and pipelines, both rate limits with their 429
bodies and headers, auth errors, faults, the search index's lag, and a clock that moves."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from b2b_pipeline.sources.amocrm.fake import read_drop
from b2b_pipeline.sources.hubspot.fake import FakeHubSpot

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def fake(hubspot_drop: Path) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(hubspot_drop, token=TOKEN, requests_per_second=1000, search_requests_per_second=1000) as f:
        yield f


def get(fake: FakeHubSpot, path: str, **params: Any) -> requests.Response:
    return requests.get(fake.base_url + path, params=params, headers=AUTH, timeout=10)


def post(fake: FakeHubSpot, path: str, body: Any) -> requests.Response:
    return requests.post(fake.base_url + path, json=body, headers=AUTH, timeout=10)


def search(fake: FakeHubSpot, object_type: str, **body: Any) -> requests.Response:
    return post(fake, f"/crm/v3/objects/{object_type}/search", body)


def all_pages(fake: FakeHubSpot, path: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        body = get(fake, path, **params).json()
        out.extend(body["results"])
        after = body.get("paging", {}).get("next", {}).get("after")
        if not after:
            return out
        params["after"] = after


def latest(rows: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["updated_at"]):
        out[row[key]] = row
    return {k: v for k, v in out.items() if str(v.get("is_deleted") or "").lower() not in ("true", "1")}


def test_shapes_carry_the_drop(fake: FakeHubSpot, hubspot_drop: Path) -> None:
    drop = read_drop(hubspot_drop)
    accounts = latest(drop["accounts"], "account_id")
    companies = all_pages(fake, "/crm/v3/objects/companies", limit=100, properties="name,tax_id,numberofemployees")
    assert {c["id"] for c in companies} == set(accounts)  # digits: the drop's ids are HubSpot's
    company = companies[0]
    account = accounts[company["id"]]
    assert company["properties"]["name"] == account["name"]
    assert company["properties"]["tax_id"] == account["tax_id"]
    assert all(v is None or isinstance(v, str) for v in company["properties"].values())  # stringly typed
    assert set(company["properties"]) >= {"createdate", "hs_lastmodifieddate", "hs_object_id"}
    assert ISO_MS.match(company["createdAt"]) and ISO_MS.match(company["properties"]["hs_lastmodifieddate"])
    assert company["archived"] is False and "archivedAt" not in company
    # defaults without `properties`; unknown properties ignored; by object type id
    default = get(fake, "/crm/v3/objects/0-2", limit=1).json()["results"][0]
    assert set(default["properties"]) == {"name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"}
    unknown = get(fake, "/crm/v3/objects/companies", limit=1, properties="name,no_such").json()["results"][0]
    assert "no_such" not in unknown["properties"]
    # contacts date their changes with lastmodifieddate
    contact = get(fake, "/crm/v3/objects/contacts", limit=1).json()["results"][0]
    assert "lastmodifieddate" in contact["properties"] and "hs_lastmodifieddate" not in contact["properties"]
    # every activity channel is an engagement: calls, emails, meetings with hs_activity_type
    activities = latest(drop["activities"], "activity_id")
    meetings = all_pages(fake, "/crm/v3/objects/meetings", limit=100, properties="hs_activity_type,hs_timestamp")
    calls = all_pages(fake, "/crm/v3/objects/calls", limit=100)
    emails = all_pages(fake, "/crm/v3/objects/emails", limit=100)
    assert len(meetings) + len(calls) + len(emails) == len(activities)
    for m in meetings:
        channel = activities[m["id"]]["channel"]
        assert m["properties"]["hs_activity_type"] == (None if channel == "meeting" else channel.capitalize())
    assert {activities[c["id"]]["channel"] for c in calls} == {"call"}


def test_list_paging_and_limits(fake: FakeHubSpot) -> None:
    first = get(fake, "/crm/v3/objects/contacts").json()
    assert len(first["results"]) == 10  # the default limit
    after = first["paging"]["next"]["after"]
    assert not after.isdigit()  # an opaque cursor
    everything = all_pages(fake, "/crm/v3/objects/contacts", limit=7)
    assert len(everything) == len({c["id"] for c in everything}) == len(fake.objects("contacts"))
    assert len(get(fake, "/crm/v3/objects/contacts", limit=500).json()["results"]) <= 100
    r = get(fake, "/crm/v3/objects/deals", limit=60, propertiesWithHistory="dealstage")
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"
    r = get(fake, "/crm/v3/objects/deals", limit=50, propertiesWithHistory="dealstage")
    assert r.status_code == 200 and all(d["propertiesWithHistory"]["dealstage"] for d in r.json()["results"])
    # associations embedded on a list
    r = get(fake, "/crm/v3/objects/deals", limit=1, associations="companies")
    assert r.json()["results"][0]["associations"]["companies"]["results"][0]["type"] == "deal_to_company"


def test_search_filters_sorts_and_pages(fake: FakeHubSpot) -> None:
    deals = fake.objects("deals")
    stamps = sorted(d["properties"]["hs_lastmodifieddate"] for d in deals.values())
    middle = stamps[len(stamps) // 2]
    body = {
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": middle}]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["dealname"],
        "limit": 3,
    }
    r = search(fake, "deals", **body)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == sum(1 for s in stamps if s >= middle)
    assert page["paging"]["next"]["after"] == "3"  # search pages by an integer offset
    assert "X-HubSpot-RateLimit-Max" not in r.headers  # search answers carry no rate-limit headers
    assert r.headers["X-HubSpot-Correlation-Id"]
    results = page["results"]
    second = search(fake, "deals", **body, after="3").json()["results"]
    got = [d["properties"]["hs_lastmodifieddate"] for d in results + second]
    assert got == sorted(got) and got[0] >= middle
    assert set(results[0]["properties"]) == {"dealname", "createdate", "hs_lastmodifieddate", "hs_object_id"}
    # epoch milliseconds in filters; groups ORed, filters ANDed
    some = sorted(deals)[:2]
    either = search(
        fake,
        "deals",
        filterGroups=[
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(some[0])}]},
            {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": [str(some[1])]}]},
        ],
    ).json()
    assert {int(d["id"]) for d in either["results"]} == set(some)
    ms = search(
        fake,
        "deals",
        filterGroups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "0"}]}],
        limit=200,
    ).json()
    assert ms["total"] == len(deals)
    # the documented limits: one sort, 5 groups of 6 filters, 18 in all
    two_sorts = [{"propertyName": "createdate"}, {"propertyName": "hs_object_id"}]
    assert search(fake, "deals", sorts=two_sorts).status_code == 400
    many = {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}
    assert search(fake, "deals", filterGroups=[{"filters": [many] * 7}]).status_code == 400
    assert search(fake, "deals", filterGroups=[{"filters": [many] * 4}] * 5).status_code == 400
    assert search(fake, "deals", filterGroups=[{"filters": [many] * 3}] * 5).status_code == 200


def test_search_stops_at_ten_thousand_results(fake: FakeHubSpot) -> None:
    fake.add_companies(10_050)
    stamp = fake.objects("companies")[900_000_000]["properties"]["hs_lastmodifieddate"]
    same = {"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": stamp}]}]}
    r = search(fake, "companies", **same, limit=200, after="9800")
    assert r.status_code == 200 and r.json()["total"] == 10_050
    assert r.json()["paging"]["next"]["after"] == "10000"
    r = search(fake, "companies", **same, limit=200, after="10000")
    assert r.status_code == 400
    assert "10,000" in r.json()["message"] and r.json()["category"] == "VALIDATION_ERROR"
    # archived records never appear in search
    fake.archive("accounts", "900000000")
    assert search(fake, "companies", **same, limit=1).json()["total"] == 10_049


def test_batch_read_with_stage_history_and_207(fake: FakeHubSpot, hubspot_drop: Path) -> None:
    drop = read_drop(hubspot_drop)
    history: dict[str, list[str]] = {}
    for row in sorted(drop["deal_stage_history"], key=lambda r: r["entered_at"]):
        history.setdefault(row["deal_id"], []).append(str(fake.hubspot_id("stages", row["stage_id"])))
    ids = sorted(fake.objects("deals"))[:5]
    body = {
        "inputs": [{"id": str(i)} for i in [*ids, 1]],
        "properties": ["dealstage"],
        "propertiesWithHistory": ["dealstage"],
    }
    r = post(fake, "/crm/v3/objects/deals/batch/read", body)
    assert r.status_code == 207  # id 1 does not exist
    answer = r.json()
    assert answer["status"] == "COMPLETE" and answer["numErrors"] == 1
    assert answer["errors"][0]["category"] == "OBJECT_NOT_FOUND" and answer["errors"][0]["context"]["ids"] == ["1"]
    for deal in answer["results"]:
        entries = deal["propertiesWithHistory"]["dealstage"]
        assert [e["value"] for e in reversed(entries)] == history[deal["id"]]  # newest first, every entry
        assert entries[0]["value"] == deal["properties"]["dealstage"]
        assert all(ISO_MS.match(e["timestamp"]) and e["sourceType"] for e in entries)
    too_many = {"inputs": [{"id": str(i)} for i in range(51)], "propertiesWithHistory": ["dealstage"]}
    assert post(fake, "/crm/v3/objects/deals/batch/read", too_many).status_code == 400


def test_associations_with_role_labels_and_paging(hubspot_drop: Path) -> None:
    drop = read_drop(hubspot_drop)
    roles = {(r["deal_id"], r["contact_id"]): r.get("role") for r in drop["deal_contacts"]}
    with FakeHubSpot(hubspot_drop, token=TOKEN, association_page_size=1) as fake:
        deal = next(d for d, _ in roles if sum(1 for k in roles if k[0] == d) > 1)
        r = post(fake, "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}]})
        result = r.json()["results"][0]
        assert result["from"] == {"id": deal} and len(result["to"]) == 1
        assert isinstance(result["to"][0]["toObjectId"], int)
        links = list(result["to"])
        while "paging" in result:
            after = result["paging"]["next"]["after"]
            body = {"inputs": [{"id": deal, "after": after}]}
            result = post(fake, "/crm/v4/associations/deals/contacts/batch/read", body).json()["results"][0]
            links.extend(result["to"])
        assert len(links) == sum(1 for k in roles if k[0] == deal)
        for link in links:
            labels = [t["label"] for t in link["associationTypes"] if t["category"] == "USER_DEFINED"]
            role = roles[(deal, str(link["toObjectId"]))]
            assert labels == ([role.replace("_", " ").capitalize()] if role else [])
            assert {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None} in link["associationTypes"]
        company = post(fake, "/crm/v4/associations/deals/companies/batch/read", {"inputs": [{"id": deal}]}).json()
        assert {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": "Primary"} in company["results"][0]["to"][0][
            "associationTypes"
        ]
        r = post(fake, "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": "1"}]})
        assert r.status_code == 207 and r.json()["numErrors"] == 1
        too_many = {"inputs": [{"id": str(i)} for i in range(1001)]}
        assert post(fake, "/crm/v4/associations/deals/contacts/batch/read", too_many).status_code == 400


def test_owners_and_pipelines(fake: FakeHubSpot, hubspot_drop: Path) -> None:
    drop = read_drop(hubspot_drop)
    users = latest(drop["users"], "user_id")
    active = all_pages(fake, "/crm/v3/owners", limit=5)
    archived = all_pages(fake, "/crm/v3/owners", limit=5, archived="true")
    assert len(active) + len(archived) == len(users)
    assert {o["id"] for o in archived} == {
        str(fake.hubspot_id("users", u)) for u, v in users.items() if v["is_active"] != "true"
    }
    owner = active[0]
    user = users[fake.drop_id("users", owner["id"])]
    assert f"{owner['firstName']} {owner['lastName']}".strip() == user["full_name"]
    assert owner["teams"] == [{"id": owner["teams"][0]["id"], "name": user["team"], "primary": True}]
    assert isinstance(owner["userId"], int) and str(owner["userId"]) != owner["id"]
    pipelines = get(fake, "/crm/v3/pipelines/deals").json()
    assert "paging" not in pipelines
    stages = {s["id"]: s for p in pipelines["results"] for s in p["stages"]}
    for row in latest(drop["stages"], "stage_id").values():
        stage = stages[str(fake.hubspot_id("stages", row["stage_id"]))]
        assert stage["label"] == row["stage_name"]
        assert stage["metadata"]["probability"] == row["probability"]
        assert stage["metadata"]["isClosed"] == (
            "true" if row["canonical_stage"] in ("closing", "post_sale", "lost") else "false"
        )


def test_archived_records_and_the_clock(fake: FakeHubSpot) -> None:
    deal = sorted(fake.objects("deals"))[0]
    before = len(fake.objects("deals"))
    fake.set_clock(fake.now + timedelta(hours=1))
    fake.archive("deals", str(deal))
    live = all_pages(fake, "/crm/v3/objects/deals", limit=100)
    gone = all_pages(fake, "/crm/v3/objects/deals", limit=100, archived="true")
    assert len(live) == before - 1 and [d["id"] for d in gone] == [str(deal)]
    assert gone[0]["archived"] is True and gone[0]["archivedAt"] == gone[0]["updatedAt"]
    assert post(fake, "/crm/v3/objects/deals/batch/read", {"inputs": [{"id": str(deal)}]}).status_code == 207
    # moving the clock back hides the archive (and every version after the clock)
    fake.set_clock(fake.now - timedelta(hours=2))
    assert len(all_pages(fake, "/crm/v3/objects/deals", limit=100)) == before
    fake.set_clock(fake.now - timedelta(days=365))
    assert all_pages(fake, "/crm/v3/objects/deals", limit=100) == []


def test_search_index_lags(fake: FakeHubSpot) -> None:
    contact = sorted(fake.objects("contacts"))[0]
    fake.set_clock(fake.now + timedelta(hours=1))
    fake.change_record("contacts", str(contact), {"job_title": "CTO"})
    fake.delay_indexing("contacts", contact, seconds=30)
    by_id = {"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(contact)}]}]}
    assert search(fake, "contacts", **by_id).json()["total"] == 0
    assert get(fake, "/crm/v3/objects/contacts", limit=100, properties="jobtitle").status_code == 200
    fake.set_clock(fake.now + timedelta(seconds=30))
    assert search(fake, "contacts", **by_id).json()["results"][0]["id"] == str(contact)


def test_auth_and_scopes(fake: FakeHubSpot) -> None:
    r = requests.get(fake.base_url + "/crm/v3/objects/deals", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401
    body = r.json()
    assert body["category"] == "INVALID_AUTHENTICATION" and body["status"] == "error"
    assert body["correlationId"] == r.headers["X-HubSpot-Correlation-Id"]
    fake.missing_scopes.add("deals")
    r = get(fake, "/crm/v3/objects/deals")
    assert r.status_code == 403 and r.json()["category"] == "MISSING_SCOPES"
    assert r.json()["errors"][0]["context"]["requiredScopes"] == ["crm.objects.deals.read"]


def test_rate_limits_answer_429_with_the_documented_bodies(hubspot_drop: Path) -> None:
    with FakeHubSpot(hubspot_drop, token=TOKEN, requests_per_second=1, search_requests_per_second=2) as fake:
        answers = [get(fake, "/crm/v3/objects/companies", limit=1) for _ in range(11)]
        assert [a.status_code for a in answers] == [200] * 10 + [429]  # 10 in a rolling ten seconds
        assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "10"
        assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert int(answers[9].headers["X-HubSpot-RateLimit-Remaining"]) == 0
        assert answers[0].headers["X-HubSpot-RateLimit-Daily"]
        limited = answers[-1].json()
        assert limited["policyName"] == "TEN_SECONDLY_ROLLING" and limited["errorType"] == "RATE_LIMIT"
        assert limited["message"] == "You have reached your ten_secondly_rolling limit."
        assert "Retry-After" not in answers[-1].headers  # HubSpot documents none
        # search has its own per-second limit, apart from the ten-second one (which is used up)
        found = [search(fake, "companies", limit=1) for _ in range(3)]
        assert [f.status_code for f in found] == [200, 200, 429]
        assert found[-1].json()["message"] == "You have reached your secondly limit."
        time.sleep(1.05)
        assert search(fake, "companies", limit=1).status_code == 200
    # HubSpot's documented rates by default; a fake sped up (the demo) speeds its search up alike
    assert FakeHubSpot(hubspot_drop, token=TOKEN).search_requests_per_second == 5
    assert FakeHubSpot(hubspot_drop, token=TOKEN, requests_per_second=50).search_requests_per_second == 50


def test_faults_and_hooks(fake: FakeHubSpot) -> None:
    path = "/crm/v3/objects/deals"
    fake.inject_fault(path, "429", after=1, retry_after=2)
    fake.inject_fault("/crm/v3/objects/companies", "503")
    fake.inject_fault("/crm/v3/objects/contacts", "drop")
    assert get(fake, path).status_code == 200
    r = get(fake, path)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert get(fake, path).status_code == 200
    assert get(fake, "/crm/v3/objects/companies").status_code == 503
    with pytest.raises(requests.ConnectionError):
        get(fake, "/crm/v3/objects/contacts")
    assert get(fake, "/crm/v3/objects/contacts").status_code == 200
    called = threading.Event()
    fake.on_request(path, 2, lambda f: called.set())
    get(fake, path)
    assert not called.is_set()
    get(fake, path)
    assert called.is_set()
    assert fake.request_count(path) == 5


def test_admin_calls_move_the_clock_and_change_records(fake: FakeHubSpot) -> None:
    start = fake.now
    r = requests.post(fake.base_url + "/_admin/clock", json={"advance_seconds": 3600}, timeout=10)
    assert r.status_code == 200 and fake.now == start + timedelta(hours=1)
    deal = sorted(fake.objects("deals"))[0]
    body = {"entity": "deals", "id": str(deal), "set": {"deal_name": "Через admin"}}
    r = requests.post(fake.base_url + "/_admin/records", json=body, timeout=10)
    assert r.json()["id"] == str(deal)
    assert fake.objects("deals")[deal]["properties"]["dealname"] == "Через admin"
    assert fake.objects("deals")[deal]["properties"]["hs_lastmodifieddate"] == r.json()["updatedAt"]
    r = requests.post(
        fake.base_url + "/_admin/records", json={"entity": "deals", "id": str(deal), "delete": True}, timeout=10
    )
    assert deal in fake.objects("deals", archived=True)
    assert requests.post(fake.base_url + "/_admin/records", json={"id": "1"}, timeout=10).status_code == 400
    assert fake.request_count() == 0  # admin calls are not API requests
