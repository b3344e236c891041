"""The amoCRM fake answers as the documented API v4 does: shapes, paging, 204, filters, ordering,
rate limits, faults, and a clock that admin calls move."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from b2b_pipeline.sources.amocrm.fake import LOST_STATUS, WON_STATUS, FakeAmoCRM, read_drop

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def fake(amo_drop: Path) -> Iterator[FakeAmoCRM]:
    with FakeAmoCRM(amo_drop, token=TOKEN, requests_per_second=1000, company_field_ids={"tax_id": 777001}) as f:
        yield f


def get(fake: FakeAmoCRM, path: str, **params: Any) -> requests.Response:
    return requests.get(fake.base_url + path, params=params, headers=AUTH, timeout=10)


def all_pages(fake: FakeAmoCRM, path: str, key: str, **params: Any) -> list[dict]:
    """Follow `_links.next` until a page without one or a 204."""
    out, url = [], fake.base_url + path
    r = requests.get(url, params=params, headers=AUTH, timeout=10)
    while True:
        if r.status_code == 204:
            return out
        body = r.json()
        out.extend(body["_embedded"][key])
        nxt = body["_links"].get("next")
        if not nxt:
            return out
        r = requests.get(nxt["href"], headers=AUTH, timeout=10)


def latest(rows: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["updated_at"]):
        out[row[key]] = row
    return {k: v for k, v in out.items() if str(v.get("is_deleted") or "").lower() not in ("true", "1")}


def test_shapes_carry_the_drop(fake: FakeAmoCRM, amo_drop: Path) -> None:
    drop = read_drop(amo_drop)
    deals = latest(drop["deals"], "deal_id")
    leads = {lead["id"]: lead for lead in all_pages(fake, "/api/v4/leads", "leads", limit=250)}
    assert set(leads) == {fake.amo_id("deals", d) for d in deals}
    r = get(fake, "/api/v4/leads", limit=250, **{"with": "contacts"})
    body = r.json()
    assert r.status_code == 200 and body["_page"] == 1 and "self" in body["_links"]
    links = {(str(x["deal_id"]), str(x["contact_id"])) for x in drop["deal_contacts"] if str(x["deal_id"]) in deals}
    served = {
        (fake.drop_id("deals", lead["id"]), fake.drop_id("contacts", c["id"]))
        for lead in body["_embedded"]["leads"]
        for c in lead["_embedded"]["contacts"]
    }
    assert served == links
    for lead in body["_embedded"]["leads"]:
        deal = deals[fake.drop_id("deals", lead["id"])]
        assert lead["price"] == int(float(deal["amount"]))
        assert lead["status_id"] == fake.amo_id("stages", deal["stage_id"])
        assert lead["_embedded"]["companies"][0]["id"] == fake.amo_id("accounts", deal["account_id"])
        assert isinstance(lead["created_at"], int) and isinstance(lead["updated_at"], int)
    companies = all_pages(fake, "/api/v4/companies", "companies", limit=250)
    accounts = latest(drop["accounts"], "account_id")
    for company in companies:
        account = accounts[fake.drop_id("accounts", company["id"])]
        fields = {f["field_id"]: f["values"][0]["value"] for f in company["custom_fields_values"] or []}
        assert fields.get(777001) == account.get("tax_id")  # the tax id in the configured field
        web = [f["values"][0]["value"] for f in company["custom_fields_values"] or [] if f["field_code"] == "WEB"]
        assert web == ([account["domain"]] if account.get("domain") else [])
    defs = get(fake, "/api/v4/companies/custom_fields").json()["_embedded"]["custom_fields"]
    assert {"id": 777001, "name": "ИНН"}.items() <= next(d for d in defs if d["id"] == 777001).items()
    pipelines = get(fake, "/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    statuses = {s["id"] for p in pipelines for s in p["_embedded"]["statuses"]}
    assert {WON_STATUS, LOST_STATUS} <= statuses
    account = get(fake, "/api/v4/account", **{"with": "users_groups,task_types"}).json()
    assert account["currency"] == "RUB" and account["_embedded"]["users_groups"]
    users = all_pages(fake, "/api/v4/users", "users", limit=250)
    assert len(users) == len(latest(drop["users"], "user_id"))
    events = all_pages(fake, "/api/v4/events", "events", limit=100, **{"filter[type]": "lead_status_changed"})
    added = all_pages(fake, "/api/v4/events", "events", limit=100, **{"filter[type][]": "lead_added"})
    assert len(events) + len(added) == len(
        {(h["deal_id"], h["stage_id"], h["entered_at"]) for h in drop["deal_stage_history"]}
    )
    assert all(e["value_after"][0]["lead_status"]["id"] in statuses for e in events)
    tasks = all_pages(fake, "/api/v4/tasks", "tasks", limit=250)
    assert len(tasks) == len(latest(drop["activities"], "activity_id"))


def test_wrong_token_gets_401_problem(fake: FakeAmoCRM) -> None:
    r = requests.get(fake.base_url + "/api/v4/leads", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 401
    assert r.json() == {
        "title": "Unauthorized",
        "type": "https://httpstatus.es/401",
        "status": 401,
        "detail": "Unauthorized",
    }


def test_paging_next_links_and_204(fake: FakeAmoCRM) -> None:
    total = len(all_pages(fake, "/api/v4/contacts", "contacts", limit=250))
    assert total > 5
    first = get(fake, "/api/v4/contacts", limit=5).json()
    assert len(first["_embedded"]["contacts"]) == 5 and "page=2" in first["_links"]["next"]["href"]
    paged = all_pages(fake, "/api/v4/contacts", "contacts", limit=5)
    assert len(paged) == total and len({c["id"] for c in paged}) == total
    assert get(fake, "/api/v4/contacts", limit=5, page=1000).status_code == 204
    # a limit over the maximum (250, events 100) is served as the default 50 a page, with a next link
    tasks = len(all_pages(fake, "/api/v4/tasks", "tasks", limit=250))
    assert tasks > 50
    over = get(fake, "/api/v4/tasks", limit=251).json()
    assert len(over["_embedded"]["tasks"]) == 50 and "limit=50" in over["_links"]["next"]["href"]
    assert len(all_pages(fake, "/api/v4/tasks", "tasks", limit=1000)) == tasks
    events = get(fake, "/api/v4/events", limit=101).json()["_embedded"]["events"]
    assert len(events) == min(50, len(all_pages(fake, "/api/v4/events", "events", limit=100)))
    # a last page exactly full still has a next link: the page after it answers 204
    exact = get(fake, "/api/v4/contacts", limit=total).json()
    assert "next" in exact["_links"]
    assert requests.get(exact["_links"]["next"]["href"], headers=AUTH, timeout=5).status_code == 204
    assert get(fake, "/api/v4/leads/notes").status_code == 204


def test_filter_and_order_ties_by_id(fake: FakeAmoCRM) -> None:
    contacts = all_pages(fake, "/api/v4/contacts", "contacts", limit=250)
    pick = sorted(c["id"] for c in contacts)[:4]
    later = fake.now + timedelta(hours=1)
    fake.set_clock(later)
    for cid in reversed(pick):  # changed at the same second
        fake.change_record("contacts", fake.drop_id("contacts", cid), {"job_title": "CTO"})
    since = int(later.timestamp())
    rows = all_pages(
        fake, "/api/v4/contacts", "contacts", limit=3, **{"filter[updated_at][from]": since, "order[updated_at]": "asc"}
    )
    assert [c["id"] for c in rows] == pick and all(c["updated_at"] == since for c in rows)
    ordered = all_pages(fake, "/api/v4/contacts", "contacts", limit=250, **{"order[updated_at]": "asc"})
    keys = [(c["updated_at"], c["id"]) for c in ordered]
    assert keys == sorted(keys)


def test_clock_and_admin_changes(fake: FakeAmoCRM) -> None:
    full = len(all_pages(fake, "/api/v4/tasks", "tasks", limit=250))
    end = fake.now
    requests.post(fake.base_url + "/_admin/clock", json={"now": (end - timedelta(days=2)).isoformat()}, timeout=5)
    assert len(all_pages(fake, "/api/v4/tasks", "tasks", limit=250)) < full
    requests.post(fake.base_url + "/_admin/clock", json={"now": (end + timedelta(days=1)).isoformat()}, timeout=5)
    assert len(all_pages(fake, "/api/v4/tasks", "tasks", limit=250)) == full
    lead = get(fake, "/api/v4/leads", limit=1).json()["_embedded"]["leads"][0]
    deal_id = fake.drop_id("deals", lead["id"])
    r = requests.post(
        fake.base_url + "/_admin/records",
        json={"entity": "deals", "id": deal_id, "set": {"deal_name": "Renamed"}},
        timeout=5,
    )
    assert r.json()["amo_id"] == lead["id"]
    now = int(fake.now.timestamp())
    changed = get(fake, "/api/v4/leads", **{"filter[updated_at][from]": now}).json()["_embedded"]["leads"]
    assert [(x["id"], x["name"], x["updated_at"]) for x in changed] == [(lead["id"], "Renamed", now)]
    requests.post(fake.base_url + "/_admin/records", json={"entity": "deals", "id": deal_id, "delete": True}, timeout=5)
    ids = {x["id"] for x in all_pages(fake, "/api/v4/leads", "leads", limit=250)}
    assert lead["id"] not in ids
    deleted = get(
        fake, "/api/v4/events", **{"filter[type]": "lead_deleted,company_deleted", "filter[created_at][from]": now}
    ).json()["_embedded"]["events"]
    assert [(e["type"], e["entity_id"], e["created_at"]) for e in deleted] == [("lead_deleted", lead["id"], now)]


def test_faults(fake: FakeAmoCRM) -> None:
    post = requests.post
    post(
        fake.base_url + "/_admin/fault",
        json={"path": "/api/v4/leads", "kind": "500", "count": 1, "after": 1},
        timeout=5,
    )
    assert get(fake, "/api/v4/leads").status_code == 200
    assert get(fake, "/api/v4/leads").status_code == 500
    assert get(fake, "/api/v4/leads").status_code == 200
    post(fake.base_url + "/_admin/fault", json={"path": "/api/v4/leads", "kind": "429", "retry_after": 2}, timeout=5)
    r = get(fake, "/api/v4/leads")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    post(fake.base_url + "/_admin/fault", json={"path": "/api/v4/leads", "kind": "429"}, timeout=5)
    r = get(fake, "/api/v4/leads")  # as amoCRM answers: an HTML page, no Retry-After
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.headers["Content-Type"] == "text/html" and "429 Too Many Requests" in r.text
    post(fake.base_url + "/_admin/fault", json={"path": "/api/v4/leads", "kind": "malformed"}, timeout=5)
    with pytest.raises(ValueError):
        get(fake, "/api/v4/leads").json()
    post(
        fake.base_url + "/_admin/fault",
        json={"path": "/api/v4/leads", "kind": "timeout", "hang_seconds": 1.0},
        timeout=5,
    )
    with pytest.raises(requests.Timeout):
        requests.get(fake.base_url + "/api/v4/leads", headers=AUTH, timeout=0.3)
    assert get(fake, "/api/v4/leads").status_code == 200


def test_rate_limit_429_then_403(amo_drop: Path) -> None:
    with FakeAmoCRM(amo_drop, token=TOKEN, abuse_threshold=5, block_seconds=1.0) as fake, requests.Session() as s:
        answers = [s.get(fake.base_url + "/api/v4/users", headers=AUTH, timeout=5) for _ in range(9)]
        codes = [r.status_code for r in answers]
        assert codes[:7] == [200] * 7 and codes[7] == 429
        # the gateway's HTML page, not a problem JSON, and no Retry-After (see the fake's docstring)
        assert answers[7].headers["Content-Type"] == "text/html" and "Retry-After" not in answers[7].headers
        with pytest.raises(ValueError):
            answers[7].json()
        r = s.get(fake.base_url + "/api/v4/users", headers=AUTH, timeout=5)
        assert r.status_code in (429, 403) and f"<h1>{r.status_code} " in r.text
        answers = [s.get(fake.base_url + "/api/v4/users", headers=AUTH, timeout=5) for _ in range(6)]
        assert answers[-1].status_code == 403 and "403 Forbidden" in answers[-1].text
        time.sleep(1.1)
        assert s.get(fake.base_url + "/api/v4/users", headers=AUTH, timeout=5).status_code == 200


def test_clock_before_any_deal_serves_204(amo_drop: Path) -> None:
    with FakeAmoCRM(amo_drop, token=TOKEN, now=datetime(2026, 9, 1, tzinfo=UTC)) as fake:
        assert get(fake, "/api/v4/leads").status_code == 204


def _cf(record: dict, name: str) -> Any:
    for f in record.get("custom_fields_values") or []:
        if f["field_name"] == name or f["field_code"] == name:
            return f["values"][0]["value"]
    return None


def _iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_drop_fact_is_recoverable_as_mapping_md_says(fake: FakeAmoCRM, amo_drop: Path) -> None:
    """Decode the API answers as MAPPING.md tells the dbt author, and compare with the drop."""
    drop = read_drop(amo_drop)
    account = get(fake, "/api/v4/account", **{"with": "users_groups,task_types"}).json()
    groups = {g["id"]: g["name"] for g in account["_embedded"]["users_groups"]}
    users = {fake.drop_id("users", u["id"]): u for u in all_pages(fake, "/api/v4/users", "users", limit=250)}
    for uid, u in latest(drop["users"], "user_id").items():
        got = users[uid]
        assert (got["name"], got["email"], groups.get(got["rights"]["group_id"]), got["rights"]["is_active"]) == (
            u["full_name"],
            u["email"],
            u["team"],
            u["is_active"].lower() in ("true", "1"),
        )
    pipelines = get(fake, "/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    statuses = {(p["id"], s["id"]): (p["name"], s) for p in pipelines for s in p["_embedded"]["statuses"]}
    stages = latest(drop["stages"], "stage_id")
    for sid, s in stages.items():
        name, status = statuses[(fake.amo_id("pipelines", s["pipeline_id"]), fake.amo_id("stages", sid))]
        assert (name, status["name"], status["sort"]) == (
            s["pipeline_id"],
            s["stage_name"],
            int(s["display_order"]) * 10,
        )
    companies = {c["id"]: c for c in all_pages(fake, "/api/v4/companies", "companies", limit=250)}
    for aid, a in latest(drop["accounts"], "account_id").items():
        c = companies[fake.amo_id("accounts", aid)]
        owner = fake.drop_id("users", c["responsible_user_id"]) if c["responsible_user_id"] else None
        assert (
            c["name"],
            _cf(c, "ИНН"),
            _cf(c, "WEB"),
            _cf(c, "Отрасль"),
            _cf(c, "Страна"),
            _cf(c, "Количество сотрудников"),
            owner,
            _iso(c["created_at"]),
            _iso(c["updated_at"]),
        ) == (
            a["name"],
            a["tax_id"],
            a["domain"],
            a["industry"],
            a["country"],
            a["employee_count"],
            a["owner_id"],
            a["created_at"],
            a["updated_at"],
        )
    contacts = {c["id"]: c for c in all_pages(fake, "/api/v4/contacts", "contacts", limit=250)}
    for cid, c in latest(drop["contacts"], "contact_id").items():
        got = contacts[fake.amo_id("contacts", cid)]
        company = got["_embedded"]["companies"][0]["id"] if got["_embedded"]["companies"] else None
        assert (
            got["name"] or None,
            _cf(got, "EMAIL"),
            _cf(got, "PHONE"),
            _cf(got, "POSITION"),
            company and fake.drop_id("accounts", company),
        ) == (c["full_name"], c["email"], c["phone"], c["job_title"], c["account_id"])
    leads = {
        x["id"]: x for x in all_pages(fake, "/api/v4/leads", "leads", limit=250, **{"with": "contacts,loss_reason"})
    }
    canonical = {sid: s["canonical_stage"] for sid, s in stages.items()}
    drop_links = {
        (str(k["deal_id"]), str(k["contact_id"])): k
        for k in sorted(drop["deal_contacts"], key=lambda k: k["updated_at"])
    }
    by_status = {
        (fake.amo_id("pipelines", s["pipeline_id"]), fake.amo_id("stages", sid)): sid for sid, s in stages.items()
    }
    for did, d in latest(drop["deals"], "deal_id").items():
        x = leads[fake.amo_id("deals", did)]
        stage = by_status[(x["pipeline_id"], x["status_id"])]
        status = (
            "lost"
            if x["status_id"] == LOST_STATUS
            else ("won" if canonical[stage] in ("closing", "post_sale") else "open")
        )
        close = _cf(x, "Ожидаемая дата закрытия")
        reason = x["_embedded"].get("loss_reason") or [{}]
        assert (
            x["name"] or None,
            fake.drop_id("deals", x["id"]),
            fake.drop_id("accounts", x["_embedded"]["companies"][0]["id"]),
            fake.drop_id("users", x["responsible_user_id"]),
            stage,
            _cf(x, "Сумма сделки"),
            _cf(x, "Валюта сделки") or account["currency"],
            status,
            _iso(x["created_at"]),
            _iso(x["closed_at"]),
            close and datetime.fromtimestamp(close, UTC).date().isoformat(),
            reason[0].get("name"),
            _cf(x, "Источник"),
        ) == (
            d["deal_name"],
            did,
            d["account_id"],
            d["owner_id"],
            d["stage_id"],
            d["amount"],
            d["currency"],
            d["status"],
            d["created_at"],
            d["closed_at"],
            d["expected_close_date"],
            d["lost_reason"],
            d["lead_source"],
        )
        roles = dict(p.split("=") for p in (_cf(x, "Роли контактов") or "").split(";") if p)
        links = {
            (did, fake.drop_id("contacts", c["id"]), roles[str(c["id"])] or None) for c in x["_embedded"]["contacts"]
        }
        assert links == {(did, c, k["role"]) for (d, c), k in drop_links.items() if d == did}
    types = {t["id"]: t["name"] for t in account["_embedded"]["task_types"]}
    names = {
        "Связаться": "call",
        "Встреча": "meeting",
        "Письмо": "email",
        "Вебинар": "webinar",
        "Соцсети": "social",
        "Мероприятие": "event",
        "Другое": "other",
    }
    tasks = {t["id"]: t for t in all_pages(fake, "/api/v4/tasks", "tasks", limit=250)}
    for aid, a in latest(drop["activities"], "activity_id").items():
        t = tasks[fake.amo_id("activities", aid)]
        entity = {"leads": "deals", "contacts": "contacts", "companies": "accounts"}[t["entity_type"]]
        linked = a["deal_id"] or a["contact_id"] or a["account_id"]
        assert (
            names[types[t["task_type_id"]]],
            _iso(t["complete_till"]),
            fake.drop_id("users", t["responsible_user_id"]),
            fake.drop_id(entity, t["entity_id"]),
        ) == (a["channel"], a["occurred_at"], a["owner_id"], linked)
    events = all_pages(
        fake, "/api/v4/events", "events", limit=100, **{"filter[type]": "lead_added,lead_status_changed"}
    )
    history = {
        (
            fake.drop_id("deals", e["entity_id"]),
            by_status[(e["value_after"][0]["lead_status"]["pipeline_id"], e["value_after"][0]["lead_status"]["id"])],
            _iso(e["created_at"]),
        )
        for e in events
    }
    assert history == {(h["deal_id"], h["stage_id"], h["entered_at"]) for h in drop["deal_stage_history"]}
