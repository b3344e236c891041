"""The HubSpot staging models (dbt_project/models/staging/hubspot) against the file drop's: the fake
serves a generated drop, the connector lands it (a night at the cutoff, then the next night, whose
later versions the cutoff must ignore), and each stg_hubspot__* table equals, row for row, the
stg_files__* table of the same drop as of the same cutoff, on the columns HubSpot carries
(sources/hubspot/MAPPING.md), with the same column types. One dbt build for the module's comparisons;
on a warehouse where HubSpot never landed the models build empty, and a pipeline the stage mapping
seed does not name maps by HubSpot's own stage metadata."""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.sources.hubspot.connector import HubSpotSettings, hubspot_source
from b2b_pipeline.sources.hubspot.fake import FakeHubSpot
from b2b_pipeline.sources.landing import land
from b2b_pipeline.transform import night_vars, run_dbt
from b2b_pipeline.warehouse import with_database

from .conftest import TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = HubSpotSettings(
    connection_name="hubspot_staging_test",
    requests_per_second=200,
    burst=20,
    search_requests_per_second=200,
    search_burst=20,
    timeout=10.0,
    # a portal whose custom properties have names of its own: the staging models read them by their roles
    tax_id_property="inn_kompanii",
    lead_source_property="istochnik_sdelki",
    expected_close_date_property="planovaya_data_zakrytiya",
)
CUSTOM_PROPERTIES = {
    "tax_id": SETTINGS.tax_id_property,
    "lead_source": SETTINGS.lead_source_property,
    "expected_close_date": SETTINGS.expected_close_date_property,
}
ENTITIES = ("users", "accounts", "contacts", "stages", "deals", "deal_stage_history", "deal_contacts", "activities")
CHANGES_DAY = date(2026, 11, 22)  # before the cutoff of the test's night (the drop ends on 2026-11-25)


def fetch(dsn: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


def column_types(dsn: str, table: str) -> dict[str, str]:
    rows = fetch(
        dsn,
        "select attname, format_type(atttypid, atttypmod) as type from pg_attribute "
        f"where attrelid = to_regclass('staging.{table}') and attnum > 0 and not attisdropped",
    )
    return {r["attname"]: r["type"] for r in rows}


def with_changes(drop: Path, out: Path) -> Path:
    """A copy of `drop` with a dated folder of changes before the cutoff: a deal, a contact and an
    activity deleted, a deal, a contact and an account changed, a deal re-entering a stage it left
    (both the fake and the loader read it)."""
    shutil.copytree(drop, out)
    folder = out / "crm" / CHANGES_DAY.isoformat()
    folder.mkdir()
    at = f"{CHANGES_DAY.isoformat()}T1{{}}:00:00Z"

    def base_rows(entity: str) -> list[dict[str, str]]:
        source = out / "crm" / f"{entity}.csv"
        if source.exists():
            with source.open(encoding="utf-8-sig", newline="") as f:
                return list(csv.DictReader(f))
        lines = (out / "crm" / f"{entity}.jsonl").read_text(encoding="utf-8").splitlines()
        return [{k: "" if v is None else str(v) for k, v in json.loads(line).items()} for line in lines if line]

    def write(entity: str, rows: list[dict[str, str]]) -> None:
        with (folder / f"{entity}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def rewrite(entity: str, changes: list[dict[str, str]]) -> None:
        base = base_rows(entity)
        extra = [k for k in ("is_deleted",) if k not in base[0]]
        write(
            entity, [{**{k: "" for k in extra}, **base[i], "is_deleted": "false", **c} for i, c in enumerate(changes)]
        )

    deals = base_rows("deals")
    rewrite(
        "deals",
        [
            {"is_deleted": "true", "updated_at": at.format(0)},
            {"deal_name": "Переименовано", "updated_at": at.format(1)},
        ],
    )
    rewrite(
        "contacts",
        [{"is_deleted": "true", "updated_at": at.format(0)}, {"job_title": "CEO", "updated_at": at.format(1)}],
    )
    rewrite("activities", [{"is_deleted": "true", "updated_at": at.format(0)}])
    rewrite("accounts", [{"industry": "Производство", "updated_at": at.format(1)}])
    # the third deal goes back to its first stage, then returns to the stage it was in: a re-entry
    history = [r for r in base_rows("deal_stage_history") if r["deal_id"] == deals[2]["deal_id"]]
    first, current = history[0]["stage_id"], deals[2]["stage_id"]
    assert first != current
    write(
        "deal_stage_history",
        [
            {"deal_id": deals[2]["deal_id"], "stage_id": first, "entered_at": at.format(2)},
            {"deal_id": deals[2]["deal_id"], "stage_id": current, "entered_at": at.format(3)},
        ],
    )
    with (folder / "deals.csv").open("a", encoding="utf-8", newline="") as f:
        csv.DictWriter(f, fieldnames=list(deals[0]) + [k for k in ("is_deleted",) if k not in deals[0]]).writerow(
            {**deals[2], "is_deleted": "false", "updated_at": at.format(3)}
        )
    return out


def build(dsn: str, as_of: Any, tmp_path: Path, *select: str) -> None:
    run_dbt(
        ["build", "--select", *select, "--indirect-selection", "buildable"],  # no test of an unbuilt model
        dsn=dsn,
        vars=night_vars(as_of, candidates=False),
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )


def fetch_rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


@dataclass
class Built:
    """The module's warehouse after both nights landed, the drop loaded and one dbt build."""

    dsn: str
    cutoff: datetime
    hubspot: Callable[[str, Any], str | None]  # drop entity, drop id -> HubSpot id (text)
    deleted: dict[str, set[str]]  # drop ids deleted before the cutoff, per entity
    reentered_deal: str


@pytest.fixture(scope="module")
def built(admin_dsn: str, hubspot_drop: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp_path = tmp_path_factory.mktemp("hubspot_staging")
    name = f"b2b_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = with_database(admin_dsn, name)
    try:
        drop = with_changes(hubspot_drop, tmp_path / "drop")
        with FakeHubSpot(
            drop,
            token=TOKEN,
            requests_per_second=1000,
            search_requests_per_second=1000,
            custom_properties=CUSTOM_PROPERTIES,
            single_currency=True,  # deals in the company currency without deal_currency_code
        ) as fake:
            end = fake.now
            as_of = (end - timedelta(days=1)).date()
            assert as_of > CHANGES_DAY
            cutoff = datetime.combine(as_of + timedelta(days=1), time(0), UTC)
            fake.set_clock(cutoff - timedelta(seconds=1))  # the night at the cutoff
            deleted = {
                entity: {str(k) for k, v in fake.store.current(entity).items() if v.get("is_deleted") == "true"}
                for entity in ("accounts", "contacts", "deals", "activities")
            }
            land(
                dsn,
                "hubspot",
                hubspot_source(fake.base_url, TOKEN, settings=SETTINGS, started_at=fake.now),
                home=tmp_path,
            )
            # the next night, with changes after the cutoff that the staging models must not see
            fake.set_clock(end)
            deal, activity = (sorted(fake.objects(o))[-1] for o in ("deals", "meetings"))
            account = _quiet_company(fake, cutoff)
            fake.change_record("deals", fake.drop_id("deals", deal), {"deal_name": "После отсечки"})
            fake.archive("accounts", fake.drop_id("accounts", account))
            fake.archive("activities", fake.drop_id("activities", activity))
            land(
                dsn,
                "hubspot",
                hubspot_source(fake.base_url, TOKEN, settings=SETTINGS, started_at=fake.now),
                home=tmp_path,
            )
            ids = {
                (e, str(k)): str(fake.hubspot_id(e, k))
                for e in ("users", "pipelines", "stages")
                for k in _drop_ids(fake, e)
            }
        load_drop(dsn, drop)
        build(dsn, as_of, tmp_path, "staging.hubspot", "hubspot_stage_mapping", "canonical_stages", "staging.files")
        reentered = _third_deal(drop)

        def hubspot(entity: str, drop_id: Any) -> str | None:
            if drop_id is None:
                return None
            return ids.get((entity, str(drop_id)), str(drop_id))  # digits are HubSpot's ids

        yield Built(dsn, cutoff, hubspot, deleted, reentered)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _quiet_company(fake: FakeHubSpot, cutoff: datetime) -> int:
    """A company no deal or engagement the next night re-reads (changed within the lookback before
    the cutoff) is associated with: archiving a company does not change the records associated with
    it, so a record re-read for another reason would carry the later association state under its
    earlier change time (a known limit: MAPPING.md)."""
    recent = cutoff - timedelta(seconds=SETTINGS.lookback_seconds + 86_400)
    busy: set[int] = set()
    pairs = fake.store.view()["associations"]
    for source in ("deals", "calls", "emails", "meetings"):
        for hs_id, record in fake.objects(source).items():
            if datetime.fromisoformat(record["updatedAt"].replace("Z", "+00:00")) >= recent:
                busy.update(e["toObjectId"] for e in pairs[(source, "companies")].get(hs_id, []))
    return min(set(fake.objects("companies")) - busy)


def _drop_ids(fake: FakeHubSpot, entity: str) -> set[str]:
    if entity == "pipelines":
        return {v[-1]["pipeline_id"] for v in fake.store.versions["stages"].values()}
    return set(fake.store.versions[entity])


def _third_deal(drop: Path) -> str:
    with (drop / "crm" / "deals.csv").open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))[2]["deal_id"]


def table(built: Built, name: str, where: str = "true") -> list[dict[str, Any]]:
    return fetch(built.dsn, f"select * from staging.{name} where {where}")


def test_the_same_canonical_columns_of_the_same_types(built: Built) -> None:
    for entity in ENTITIES:
        files, hubspot = (
            column_types(built.dsn, f"stg_files__{entity}"),
            column_types(built.dsn, f"stg_hubspot__{entity}"),
        )
        assert hubspot == {c: t for c, t in files.items() if not c.startswith("_")}, entity


def test_hubspot_staging_equals_the_file_staging_of_the_same_drop(built: Built) -> None:
    hs = built.hubspot
    live_deals = {d["deal_id"] for d in table(built, "stg_files__deals")}
    live_contacts = {c["contact_id"] for c in table(built, "stg_files__contacts")}
    live_accounts = {a["account_id"] for a in table(built, "stg_files__accounts")}

    def linked(drop_id: str | None, live: set[str]) -> str | None:
        """HubSpot drops the associations of an archived record."""
        return drop_id if drop_id in live else None

    before = f"entered_at < '{built.cutoff.isoformat()}'"
    # drop row -> the HubSpot row it should be: (files rows, the mapping, the columns HubSpot carries)
    expected: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], dict[str, Any]], tuple[str, ...]]] = {
        "users": (
            table(built, "stg_files__users"),
            lambda r: {**r, "user_id": hs("users", r["user_id"])},
            ("user_id", "full_name", "email", "team", "is_active", "updated_at"),
        ),
        "accounts": (
            table(built, "stg_files__accounts"),
            lambda r: {**r, "owner_user_id": hs("users", r["owner_user_id"])},
            (
                "account_id",
                "owner_user_id",
                "account_name",
                "tax_id",
                "domain",
                "industry",
                "country",
                "employee_count",
                "created_at",
                "updated_at",
            ),
        ),
        "contacts": (
            table(built, "stg_files__contacts"),
            lambda r: r,
            ("contact_id", "account_id", "full_name", "email", "phone", "job_title", "created_at", "updated_at"),
        ),
        "stages": (
            table(built, "stg_files__stages"),
            lambda r: {**r, "stage_id": hs("stages", r["stage_id"]), "pipeline_id": hs("pipelines", r["pipeline_id"])},
            ("stage_id", "pipeline_id", "stage_name", "canonical_stage", "display_order", "probability", "updated_at"),
        ),
        "deals": (
            table(built, "stg_files__deals"),
            lambda r: {
                **r,
                "account_id": linked(r["account_id"], live_accounts),
                "owner_user_id": hs("users", r["owner_user_id"]),
                "pipeline_id": hs("pipelines", r["pipeline_id"]),
                "stage_id": hs("stages", r["stage_id"]),
            },
            # updated_at: HubSpot's also moves with the contact links and stage entries (checked below)
            (
                "deal_id",
                "account_id",
                "owner_user_id",
                "pipeline_id",
                "stage_id",
                "deal_name",
                "status",
                "currency",
                "amount",
                "lost_reason",
                "lead_source",
                "expected_close_date",
                "created_at",
                "closed_at",
            ),
        ),
        "deal_stage_history": (
            [r for r in table(built, "stg_files__deal_stage_history", before) if r["deal_id"] in live_deals],
            lambda r: {**r, "stage_id": hs("stages", r["stage_id"])},
            ("deal_id", "stage_id", "entered_at"),
        ),
        "deal_contacts": (
            [
                r
                for r in table(built, "stg_files__deal_contacts")
                if r["deal_id"] in live_deals and r["contact_id"] in live_contacts
            ],
            lambda r: r,
            ("deal_id", "contact_id", "role"),  # updated_at: the deal's in HubSpot
        ),
        "activities": (
            table(built, "stg_files__activities"),
            lambda r: {
                **r,
                "deal_id": linked(r["deal_id"], live_deals),
                "account_id": linked(r["account_id"], live_accounts),
                "contact_id": linked(r["contact_id"], live_contacts),
                "owner_user_id": hs("users", r["owner_user_id"]),
            },
            (
                "activity_id",
                "deal_id",
                "account_id",
                "contact_id",
                "owner_user_id",
                "channel",
                "occurred_at",
                "updated_at",
            ),
        ),
    }
    differences = {}
    for entity, (truth, to_hubspot, columns) in expected.items():
        want = Counter(tuple(to_hubspot(r)[c] for c in columns) for r in truth)
        got = Counter(tuple(r[c] for c in columns) for r in table(built, f"stg_hubspot__{entity}"))
        assert want, entity  # the drop has rows of every entity
        if want != got:
            differences[entity] = {
                "missing": sorted(map(str, want - got))[:3],
                "extra": sorted(map(str, got - want))[:3],
            }
    assert not differences, differences


def test_a_single_currency_portal_gives_its_deals_the_company_currency(built: Built) -> None:
    """The fake is a portal without multiple currencies: deals in its company currency carry no
    deal_currency_code, and take the company currency of /account-info/v3/details."""
    ((company_currency,),) = fetch_rows(built.dsn, "select doc ->> 'companyCurrency' from raw_hubspot.account")
    without_code = fetch_rows(
        built.dsn,
        "select distinct deals.deal_id, deals.currency from raw_hubspot.deals as raw "
        "join staging.stg_hubspot__deals as deals on deals.deal_id = raw.record_id "
        "where raw.doc -> 'properties' ->> 'deal_currency_code' is null and not raw.is_deleted",
    )
    assert without_code and {currency for _, currency in without_code} == {company_currency}


def test_deals_change_time_re_entries_and_the_cutoff(built: Built) -> None:
    # a deal's updated_at is its own, or later when a contact link or a stage entry came after it
    files_updated = {r["deal_id"]: r["updated_at"] for r in table(built, "stg_files__deals")}
    for r in table(built, "stg_hubspot__deals"):
        assert files_updated[r["deal_id"]] <= r["updated_at"] < built.cutoff
    # the deal that went back to its first stage and returned has both entries of each stage
    entries = Counter(
        r["stage_id"] for r in table(built, "stg_hubspot__deal_stage_history", f"deal_id = '{built.reentered_deal}'")
    )
    assert sorted(entries.values())[-2:] == [2, 2]
    # the next night's versions landed, and the cutoff kept them out
    for raw in ("deals", "companies", "meetings"):
        later = fetch(
            built.dsn, f"select count(*) as n from raw_hubspot.{raw} where updated_at >= '{built.cutoff.isoformat()}'"
        )
        assert later[0]["n"] > 0, raw
    # the deletions before the cutoff landed as archived versions and left staging
    deleted = fetch(
        built.dsn,
        f"select record_id from raw_hubspot.deals where is_deleted and updated_at < '{built.cutoff.isoformat()}'",
    )
    assert {r["record_id"] for r in deleted} == built.deleted["deals"] != set()
    assert not {r["deal_id"] for r in table(built, "stg_hubspot__deals")} & built.deleted["deals"]


def test_hubspot_staging_builds_empty_where_hubspot_never_landed_and_maps_stages(
    warehouse: str, tmp_path: Path
) -> None:
    build(warehouse, "2026-11-24", tmp_path, "staging.hubspot", "hubspot_stage_mapping", "canonical_stages")
    for entity in ENTITIES:
        assert fetch(warehouse, f"select count(*) as n from staging.stg_hubspot__{entity}") == [{"n": 0}], entity

    # HubSpot's default pipeline by the seed's `default` rows; a pipeline the seed does not name by its
    # stages' metadata (closed with probability 1 or 0), any other stage unmapped (NULL, for the gate)
    def stage(sid: str, label: str, order: int, probability: str | None, closed: bool) -> dict[str, Any]:
        metadata = {"isClosed": "true" if closed else "false"}
        if probability is not None:
            metadata["probability"] = probability
        return {"id": sid, "label": label, "displayOrder": order, "metadata": metadata, "archived": False}

    default = {
        "id": "default",
        "label": "Sales Pipeline",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "stages": [
            stage("appointmentscheduled", "Appointment Scheduled", 0, "0.2", False),
            stage("closedwon", "Closed Won", 5, "1.0", True),
            stage("contractsent", "Contract Sent", 4, None, False),
        ],
    }
    custom = {
        "id": "771",
        "label": "Партнёры",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "stages": [
            stage("9001", "Свой этап", 0, "0.3", False),
            stage("9002", "Выиграна", 1, "1.0", True),
            stage("9003", "Проиграна", 2, "0.0", True),
        ],
    }
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("create schema raw_hubspot")
        conn.execute(
            "create table raw_hubspot.pipelines (record_id varchar, updated_at timestamptz, is_deleted boolean, "
            "doc jsonb, _version varchar, _extracted_at timestamptz, _dlt_load_id varchar, _dlt_id varchar)"
        )
        for doc in (default, custom):
            conn.execute(
                "insert into raw_hubspot.pipelines values (%s, '2026-01-01', false, %s, 'v1', now(), 'l1', 'd1')",
                (doc["id"], psycopg.types.json.Jsonb(doc)),
            )
    build(warehouse, "2026-11-24", tmp_path, "stg_hubspot__stages", "hubspot_stage_mapping", "canonical_stages")
    got = fetch(
        warehouse, "select stage_id, canonical_stage, display_order, probability from staging.stg_hubspot__stages"
    )
    assert sorted((r["stage_id"], r["canonical_stage"], r["display_order"], r["probability"]) for r in got) == [
        ("9001", None, 1, Decimal("0.3")),
        ("9002", "closing", 2, Decimal("1.0")),
        ("9003", "lost", 3, Decimal("0.0")),
        ("appointmentscheduled", "lead", 1, Decimal("0.2")),
        ("closedwon", "closing", 3, Decimal("1.0")),
        ("contractsent", "negotiation", 2, Decimal("0.9")),  # no metadata.probability: the seed's
    ]
