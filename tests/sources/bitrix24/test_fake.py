"""The Bitrix24 fake answers as the documented REST API does: shapes, paging, filters, ordering,
batch, limits, faults, clock and admin changes, over a small generated drop."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests

from b2b_pipeline.generate import generate_company
from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24, parse_instant, php_params

NIGHT1 = datetime(2026, 11, 24, tzinfo=UTC)  # the base export is visible, the two day folders not yet
NIGHT3 = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b24drop")
    generate_company(out, seed=11, accounts=12, start=date(2026, 3, 1), end=date(2026, 11, 25), nightly_days=2)
    return out


@pytest.fixture
def fake(drop: Path) -> Iterator[FakeBitrix24]:
    with FakeBitrix24(drop, webhook_user=7, webhook_secret="s3cr3t-hook", now=NIGHT1) as f:
        yield f


def call(fake: FakeBitrix24, method: str, **params: object) -> dict:
    r = requests.post(fake.webhook_url + method + ".json", json=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def all_pages(fake: FakeBitrix24, method: str, **params: object) -> list[dict]:
    rows, start = [], 0
    while True:
        answer = call(fake, method, start=start, **params)
        rows.extend(answer["result"])
        if "next" not in answer:
            return rows
        start = answer["next"]


def test_shapes_strings_and_portal_offset(fake: FakeBitrix24) -> None:
    answer = call(fake, "crm.deal.list", select=["*", "UF_*"])
    assert set(answer) >= {"result", "total", "time"}
    assert set(answer["time"]) >= {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
        "operating",
    }
    assert answer["time"]["date_start"] == "2026-11-24T03:00:00+03:00"
    deal = answer["result"][0]
    assert all(isinstance(v, str) for v in deal.values())
    assert deal["DATE_MODIFY"].endswith("+03:00") and deal["CURRENCY_ID"]
    assert deal["STAGE_SEMANTIC_ID"] in ("P", "S", "F")
    items = call(fake, "crm.stagehistory.list", entityTypeId=2)["result"]["items"]
    assert isinstance(items[0]["ID"], int) and items[0]["TYPE_ID"] == 1
    cats = call(fake, "crm.category.list", entityTypeId=2)["result"]["categories"]
    assert [c["name"] for c in cats] == ["new_business", "expansion"]
    stages = call(fake, "crm.status.list", filter={"ENTITY_ID": "DEAL_STAGE_1"})["result"]
    assert stages and all(s["STATUS_ID"].startswith("C1:") for s in stages)
    assert {s["SEMANTICS"] for s in stages} == {None, "S", "F"}
    users = call(fake, "user.get")["result"]
    assert isinstance(users[0]["ACTIVE"], bool)


def test_paging_by_start_and_the_uncounted_scan(fake: FakeBitrix24) -> None:
    first = call(fake, "crm.activity.list")
    total = first["total"]
    assert total > 100 and first["next"] == 50 and len(first["result"]) == 50
    rows = all_pages(fake, "crm.activity.list", order={"ID": "ASC"})
    ids = [int(r["ID"]) for r in rows]
    assert len(ids) == total == len(set(ids)) and ids == sorted(ids)
    quick = call(fake, "crm.activity.list", start=-1, order={"ID": "ASC"}, filter={">ID": 40}, select=["ID"])
    assert "next" not in quick and quick["total"] == 0
    assert [r["ID"] for r in quick["result"]] == [str(i) for i in range(41, 91)]


def test_filter_order_select(fake: FakeBitrix24) -> None:
    everything = all_pages(fake, "crm.contact.list", select=["ID", "DATE_MODIFY"])
    cut = sorted(parse_instant(r["DATE_MODIFY"]) for r in everything)[len(everything) // 2]
    since = datetime.fromtimestamp(cut, UTC).isoformat()
    rows = all_pages(
        fake, "crm.contact.list", filter={">=DATE_MODIFY": since}, order={"DATE_MODIFY": "ASC", "ID": "ASC"}
    )
    assert rows and len(rows) == sum(1 for r in everything if parse_instant(r["DATE_MODIFY"]) >= cut)
    keys = [(parse_instant(r["DATE_MODIFY"]), int(r["ID"])) for r in rows]
    assert keys == sorted(keys)
    assert "EMAIL" not in rows[0]  # a multi-field comes only when named
    named = call(fake, "crm.contact.list", select=["ID", "EMAIL", "PHONE"])["result"]
    assert set(named[0]) == {"ID", "EMAIL", "PHONE"}
    with_email = [r for r in all_pages(fake, "crm.contact.list", select=["*", "EMAIL"]) if r["EMAIL"]]
    assert with_email[0]["EMAIL"][0]["TYPE_ID"] == "EMAIL" and with_email[0]["HAS_EMAIL"] == "Y"


def test_form_and_query_parameters_in_php_style(fake: FakeBitrix24) -> None:
    assert php_params([("filter[>ID]", "5"), ("select[]", "ID"), ("select[]", "TITLE")]) == {
        "filter": {">ID": "5"},
        "select": ["ID", "TITLE"],
    }
    by_get = requests.get(
        fake.webhook_url + "crm.deal.list",
        params={"filter[>ID]": "3", "select[]": "ID", "order[ID]": "DESC"},
        timeout=10,
    ).json()
    by_form = requests.post(
        fake.webhook_url + "crm.deal.list.json",
        data={"filter[>ID]": "3", "select[]": "ID", "order[ID]": "DESC"},
        timeout=10,
    ).json()
    assert by_get["result"] == by_form["result"]
    ids = [int(r["ID"]) for r in by_get["result"]]
    assert ids == sorted(ids, reverse=True) and min(ids) == 4


def test_mapping_ids_tax_id_roles(fake: FakeBitrix24, drop: Path) -> None:
    accounts = {r["account_id"]: r for r in csv.DictReader((drop / "crm/accounts.csv").open(encoding="utf-8"))}
    requisites = {r["ENTITY_ID"]: r for r in all_pages(fake, "crm.requisite.list")}
    taxed = [a for a in accounts.values() if a["tax_id"]]
    assert taxed
    for a in taxed:
        b24 = fake.b24_id("accounts", a["account_id"])
        assert fake.drop_id("accounts", b24) == a["account_id"]
        assert requisites[str(b24)]["RQ_INN"] == a["tax_id"]
    deals = all_pages(fake, "crm.deal.list", select=["ID", "ORIGIN_ID", "ORIGINATOR_ID"])
    assert all(fake.drop_id("deals", d["ID"]) == d["ORIGIN_ID"] for d in deals)
    users = call(fake, "user.get")["result"]
    assert all(fake.drop_id("users", u["ID"]) == u["XML_ID"] for u in users)
    links = list(csv.DictReader((drop / "crm/deal_contacts.csv").open(encoding="utf-8")))
    link = next(x for x in links if x["role"] == "influencer")
    items = call(fake, "crm.deal.contact.items.get", id=fake.b24_id("deals", link["deal_id"]))["result"]
    mine = [i for i in items if i["CONTACT_ID"] == fake.b24_id("contacts", link["contact_id"])]
    assert mine and mine[0]["ROLE_ID"] == 2
    assert sum(i["IS_PRIMARY"] == "Y" for i in items) == 1


def test_batch(fake: FakeBitrix24) -> None:
    cmd = {f"d{i}": f"crm.deal.contact.items.get?id={i}" for i in (1, 2)}
    cmd["nope"] = "crm.deal.contact.items.get?id=99999"
    cmd["list"] = "crm.deal.list?select[]=ID&start=-1"
    answer = call(fake, "batch", halt=0, cmd=cmd)["result"]
    assert set(answer["result"]) == {"d1", "d2", "list"}
    assert answer["result_error"]["nope"]["error_description"] == "Not found."
    assert set(answer["result_time"]) == {"d1", "d2", "list"}
    r = requests.post(fake.webhook_url + "batch", json={"cmd": {str(i): "user.get" for i in range(51)}}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"
    assert len(fake.calls_of("crm.deal.contact.items.get")) == 2  # the failed one is no answered call


def test_rate_limit_and_operating_time(drop: Path) -> None:
    with FakeBitrix24(drop, webhook_user=1, webhook_secret="x", now=NIGHT1, rate=0.5, burst=5) as f:
        codes = [requests.post(f.webhook_url + "user.get", timeout=10).status_code for _ in range(6)]
        assert codes == [200] * 5 + [503]
        r = requests.post(f.webhook_url + "user.get", timeout=10)
        assert r.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    with FakeBitrix24(
        drop, webhook_user=1, webhook_secret="x", now=NIGHT1, operating_limit=1.5, operating_cost=1.0
    ) as f:
        ok = requests.post(f.webhook_url + "crm.deal.list", timeout=10).json()
        assert ok["time"]["operating"] >= 1.0 and ok["time"]["operating_reset_at"] > ok["time"]["start"]
        assert requests.post(f.webhook_url + "crm.deal.list", timeout=10).status_code == 200
        r = requests.post(f.webhook_url + "crm.deal.list", timeout=10)
        assert r.status_code == 429 and r.json()["error"] == "OPERATION_TIME_LIMIT"
        assert requests.post(f.webhook_url + "crm.contact.list", timeout=10).status_code == 200  # per method


def test_faults(fake: FakeBitrix24) -> None:
    url = fake.webhook_url + "crm.deal.list"
    fake.fault("crm.deal.list", "500", after=1)
    assert requests.post(url, timeout=10).status_code == 200
    assert requests.post(url, timeout=10).json()["error"] == "INTERNAL_SERVER_ERROR"
    requests.post(
        fake.base_url + "/_admin/fault", json={"method": "crm.deal.list", "kind": "503", "count": 2}, timeout=5
    )
    assert [requests.post(url, timeout=10).status_code for _ in range(3)] == [503, 503, 200]
    fake.fault("crm.deal.list", "malformed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(requests.post(url, timeout=10).text)
    fake.fault("crm.deal.list", "timeout", seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(url, timeout=0.3)
    assert requests.post(url, timeout=10).status_code == 200


def test_wrong_webhook_is_401(fake: FakeBitrix24) -> None:
    r = requests.post(f"{fake.base_url}/rest/7/not-the-secret/crm.deal.list.json", timeout=10)
    assert r.status_code == 401
    assert r.json() == {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}


def test_clock_and_admin_changes(fake: FakeBitrix24, drop: Path) -> None:
    before = {r["ID"] for r in all_pages(fake, "crm.activity.list", select=["ID"])}
    day_two = drop / "crm/2026-11-25/activities.jsonl"
    late = [json.loads(line) for line in day_two.read_text(encoding="utf-8").splitlines()]
    new_ids = {str(fake.b24_id("activities", a["activity_id"])) for a in late} - before
    requests.post(fake.base_url + "/_admin/clock", json={"now": NIGHT3.isoformat()}, timeout=5)
    after = {r["ID"] for r in all_pages(fake, "crm.activity.list", select=["ID"])}
    assert new_ids and new_ids <= after

    deal = call(fake, "crm.deal.list", start=-1, filter={"STAGE_SEMANTIC_ID": "P"})["result"][0]
    drop_deal = fake.drop_id("deals", deal["ID"])
    target = "nb_06" if deal["STAGE_ID"] != "nb_06" else "nb_05"
    r = requests.post(
        fake.base_url + "/_admin/records",
        json={"entity": "deals", "op": "update", "id": drop_deal, "fields": {"amount": "12345.6", "stage_id": target}},
        timeout=5,
    )
    assert r.json()["result"]["ID"] == int(deal["ID"])
    changed = call(fake, "crm.deal.list", filter={"ID": deal["ID"]})["result"][0]
    assert changed["OPPORTUNITY"] == "12345.60" and changed["DATE_MODIFY"] == "2026-11-26T03:00:00+03:00"
    history = call(fake, "crm.stagehistory.list", entityTypeId=2, filter={"OWNER_ID": deal["ID"]})["result"]["items"]
    assert history[-1]["STAGE_ID"] == target and history[-1]["CREATED_TIME"] == "2026-11-26T03:00:00+03:00"

    link = next(k for k in fake._store.current("deal_contacts", fake.now()) if k[0] != drop_deal)
    fake.set_now(datetime(2026, 11, 26, 1, tzinfo=UTC))
    body = {"entity": "deal_contacts", "op": "update", "id": list(link), "fields": {"role": "other"}}
    requests.post(fake.base_url + "/_admin/records", json=body, timeout=5).raise_for_status()
    linked = call(fake, "crm.deal.list", filter={"ID": fake.b24_id("deals", link[0])})["result"][0]
    assert linked["DATE_MODIFY"] == "2026-11-26T04:00:00+03:00"  # a deal is touched when its contacts change
    items = call(fake, "crm.deal.contact.items.get", id=linked["ID"])["result"]
    assert {i["CONTACT_ID"]: i["ROLE_ID"] for i in items}[fake.b24_id("contacts", link[1])] == 4

    fake.change("deals", "delete", drop_deal)
    assert call(fake, "crm.deal.list", filter={"ID": deal["ID"]})["result"] == []
    r = requests.post(fake.webhook_url + "crm.deal.contact.items.get", json={"id": deal["ID"]}, timeout=5)
    assert r.status_code == 400 and r.json()["error_description"] == "Not found."
