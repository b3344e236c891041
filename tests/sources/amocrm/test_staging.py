"""The amoCRM staging models (dbt_project/models/staging/amocrm) against the file drop's: the fake
serves a generated drop, the connector lands it (a night at the cutoff, then the next night, whose
later versions the cutoff must ignore), and each stg_amocrm__* table equals, row for row, the
stg_files__* table of the same drop as of the same cutoff, on the columns amoCRM carries
(sources/amocrm/MAPPING.md), with the same column types. On a warehouse where amoCRM never landed
the models build empty; a pipeline the stage mapping seed does not name maps by amoCRM's defaults."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.sources.amocrm.connector import AmoCRMSettings, amocrm_source
from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM
from b2b_pipeline.sources.landing import land
from b2b_pipeline.transform import night_vars, run_dbt

from .conftest import TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]  # the server too: see tests/conftest.py

SETTINGS = AmoCRMSettings(connection_name="amocrm_staging_test", requests_per_second=50, burst=10, timeout=10.0)
ENTITIES = ("users", "accounts", "contacts", "stages", "deals", "deal_stage_history", "deal_contacts", "activities")


def fetch(dsn: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(sql).fetchall()


def column_types(dsn: str, table: str) -> dict[str, str]:
    rows = fetch(
        dsn,
        "select attname, format_type(atttypid, atttypmod) as type from pg_attribute "
        f"where attrelid = to_regclass('staging.{table}') and attnum > 0 and not attisdropped",
    )
    return {r["attname"]: r["type"] for r in rows}


CHANGES_DAY = date(2026, 11, 22)  # before the cutoff of the test's night (the drop ends on 2026-11-25)


def with_changes(drop: Path, out: Path) -> Path:
    """A copy of `drop` with a dated folder of changes before the cutoff: a deal, a contact and an
    activity deleted, a deal, a contact and an account changed (both the fake and the loader read it)."""
    shutil.copytree(drop, out)
    folder = out / "crm" / CHANGES_DAY.isoformat()
    folder.mkdir()
    at = f"{CHANGES_DAY.isoformat()}T1{{}}:00:00Z"

    def rewrite(entity: str, changes: list[dict[str, str]]) -> None:
        source = out / "crm" / f"{entity}.csv"
        if source.exists():
            with source.open(encoding="utf-8-sig", newline="") as f:
                base = list(csv.DictReader(f))
        else:
            lines = (out / "crm" / f"{entity}.jsonl").read_text(encoding="utf-8").splitlines()
            base = [{k: "" if v is None else str(v) for k, v in json.loads(line).items()} for line in lines if line]
        with (folder / f"{entity}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(base[0]) + [k for k in ("is_deleted",) if k not in base[0]])
            writer.writeheader()
            for i, change in enumerate(changes):
                writer.writerow({**base[i], "is_deleted": "false", **change})

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
    return out


def build(dsn: str, as_of: Any, tmp_path: Path, *select: str) -> None:
    run_dbt(
        ["build", "--select", *select, "--indirect-selection", "buildable"],  # no test of an unbuilt model
        dsn=dsn,
        vars=night_vars(as_of, candidates=False),
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )


def test_amocrm_staging_equals_the_file_staging_of_the_same_drop(
    warehouse: str, amo_drop: Path, tmp_path: Path
) -> None:
    drop = with_changes(amo_drop, tmp_path / "drop")
    with FakeAmoCRM(drop, token=TOKEN, requests_per_second=1000) as fake:
        end = fake.now
        as_of = (end - timedelta(days=1)).date()
        assert as_of > CHANGES_DAY
        cutoff = datetime.combine(as_of + timedelta(days=1), time(0), UTC)
        fake.set_clock(cutoff - timedelta(seconds=1))  # the night at the cutoff
        land(
            warehouse,
            "amocrm",
            amocrm_source(fake.base_url, TOKEN, settings=SETTINGS, started_at=fake.now),
            home=tmp_path / "home",
        )
        # the next night, with changes after the cutoff that the staging models must not see
        fake.set_clock(end)
        deal, account, task = (
            sorted(i["id"] for i in fake.store.view()[n])[-1] for n in ("leads", "companies", "tasks")
        )
        fake.change_record("deals", fake.drop_id("deals", deal), {"deal_name": "После отсечки"})
        fake.change_record("accounts", fake.drop_id("accounts", account), delete=True)
        fake.change_record("activities", fake.drop_id("activities", task), delete=True)
        land(
            warehouse,
            "amocrm",
            amocrm_source(fake.base_url, TOKEN, settings=SETTINGS, started_at=fake.now),
            home=tmp_path / "home",
        )
        amo: Callable[[str, Any], str | None] = lambda entity, drop_id: (  # noqa: E731
            None if drop_id is None else str(fake.amo_id(entity, drop_id))
        )
    load_drop(warehouse, drop)
    build(warehouse, as_of, tmp_path, "staging.amocrm", "amocrm_stage_mapping", "canonical_stages", "staging.files")

    # the same canonical columns, of the same types
    for entity in ENTITIES:
        files, amocrm = (
            column_types(warehouse, f"stg_files__{entity}"),
            column_types(warehouse, f"stg_amocrm__{entity}"),
        )
        assert amocrm == {c: t for c, t in files.items() if not c.startswith("_")}, entity

    def table(name: str, where: str = "true") -> list[dict[str, Any]]:
        return fetch(warehouse, f"select * from staging.{name} where {where}")

    stages = {s["stage_id"]: s for s in table("stg_files__stages")}

    def stage(drop_id: str | None) -> str | None:
        if drop_id is None:
            return None
        return f"{amo('pipelines', stages[drop_id]['pipeline_id'])}:{amo('stages', drop_id)}"

    live_deals = {d["deal_id"] for d in table("stg_files__deals")}
    before = f"entered_at < '{cutoff.isoformat()}'"
    # drop row -> the amoCRM row it should be: (files table, its filter, the mapping, the amoCRM columns)
    expected: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], dict[str, Any]], tuple[str, ...]]] = {
        "users": (
            table("stg_files__users"),
            lambda r: {**r, "user_id": amo("users", r["user_id"])},
            ("user_id", "full_name", "email", "team", "is_active"),  # updated_at: not carried
        ),
        "accounts": (
            table("stg_files__accounts"),
            lambda r: {
                **r,
                "account_id": amo("accounts", r["account_id"]),
                "owner_user_id": amo("users", r["owner_user_id"]),
            },
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
            table("stg_files__contacts"),
            lambda r: {
                **r,
                "contact_id": amo("contacts", r["contact_id"]),
                "account_id": amo("accounts", r["account_id"]),
            },
            ("contact_id", "account_id", "full_name", "email", "phone", "job_title", "created_at", "updated_at"),
        ),
        "stages": (
            table("stg_files__stages"),
            lambda r: {**r, "stage_id": stage(r["stage_id"]), "pipeline_id": amo("pipelines", r["pipeline_id"])},
            # probability and canonical_stage: from the seed's demo rows; updated_at: not carried
            ("stage_id", "pipeline_id", "stage_name", "canonical_stage", "display_order", "probability"),
        ),
        "deals": (
            table("stg_files__deals"),
            lambda r: {
                **r,
                "deal_id": amo("deals", r["deal_id"]),
                "account_id": amo("accounts", r["account_id"]),
                "owner_user_id": amo("users", r["owner_user_id"]),
                "pipeline_id": amo("pipelines", r["pipeline_id"]),
                "stage_id": stage(r["stage_id"]),
            },
            # updated_at: amoCRM's also moves with the contact links (checked below)
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
            # amoCRM's event log keeps the entries of deleted deals: staging keeps the live deals' only
            [r for r in table("stg_files__deal_stage_history", before) if r["deal_id"] in live_deals],
            lambda r: {**r, "deal_id": amo("deals", r["deal_id"]), "stage_id": stage(r["stage_id"])},
            ("deal_id", "stage_id", "entered_at"),
        ),
        "deal_contacts": (
            [r for r in table("stg_files__deal_contacts") if r["deal_id"] in live_deals],
            lambda r: {**r, "deal_id": amo("deals", r["deal_id"]), "contact_id": amo("contacts", r["contact_id"])},
            ("deal_id", "contact_id", "role"),  # updated_at: the lead's in amoCRM
        ),
        "activities": (
            table("stg_files__activities"),
            lambda r: {
                **r,
                "activity_id": amo("activities", r["activity_id"]),
                "deal_id": amo("deals", r["deal_id"]),
                # a task links one entity: a task on a deal does not carry the contact
                "contact_id": None if r["deal_id"] else amo("contacts", r["contact_id"]),
                # the account of a task on a lead is the lead's: unknown when the lead was deleted
                # before amoCRM was first read (only its deletion landed)
                "account_id": None
                if r["deal_id"] and r["deal_id"] not in live_deals
                else amo("accounts", r["account_id"]),
                "owner_user_id": amo("users", r["owner_user_id"]),
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
    for entity, (truth, to_amo, columns) in expected.items():
        want = Counter(tuple(to_amo(r)[c] for c in columns) for r in truth)
        got = Counter(tuple(r[c] for c in columns) for r in table(f"stg_amocrm__{entity}"))
        assert want, entity  # the drop has rows of every entity
        if want != got:
            differences[entity] = {
                "missing": sorted(map(str, want - got))[:5],
                "extra": sorted(map(str, got - want))[:5],
            }
    assert not differences, differences

    # a lead's updated_at is its deal's, or later when a contact link changed after it
    files_updated = {amo("deals", r["deal_id"]): r["updated_at"] for r in table("stg_files__deals")}
    for r in table("stg_amocrm__deals"):
        assert files_updated[r["deal_id"]] <= r["updated_at"] < cutoff
    # the next night's versions landed, and the cutoff kept them out
    for raw in ("leads", "companies", "tasks"):
        later = fetch(
            warehouse, f"select count(*) as n from raw_amocrm.{raw} where updated_at >= '{cutoff.isoformat()}'"
        )
        assert later[0]["n"] > 0, raw
    # the changes before the cutoff are there: deletions and new versions
    deleted = fetch(
        warehouse,
        f"select count(*) as n from raw_amocrm.leads where is_deleted and updated_at < '{cutoff.isoformat()}'",
    )
    assert deleted[0]["n"] == 1


def test_amocrm_staging_builds_empty_where_amocrm_never_landed_and_maps_stages(warehouse: str, tmp_path: Path) -> None:
    build(warehouse, "2026-11-24", tmp_path, "staging.amocrm", "amocrm_stage_mapping", "canonical_stages")
    for entity in ENTITIES:
        assert fetch(warehouse, f"select count(*) as n from staging.stg_amocrm__{entity}") == [{"n": 0}], entity

    # a pipeline the seed does not name: 142 and 143 by id, amoCRM's standard names by the `*` rows,
    # any other status unmapped (NULL canonical stage, for the quality gate)
    statuses = [(142, "Сделка!", 30), (143, "Отказ", 40), (501, "Переговоры", 10), (502, "Свой этап", 20)]
    doc = {
        "id": 77,
        "name": "Продажи",
        "_embedded": {"statuses": [{"id": i, "name": n, "sort": s, "pipeline_id": 77} for i, n, s in statuses]},
    }
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("create schema raw_amocrm")
        conn.execute(
            "create table raw_amocrm.pipelines (record_id varchar, updated_at timestamptz, is_deleted boolean, "
            "doc jsonb, _version varchar, _extracted_at timestamptz, _dlt_load_id varchar, _dlt_id varchar)"
        )
        conn.execute(
            "insert into raw_amocrm.pipelines values ('77', null, false, %s, 'v1', now(), 'l1', 'd1')",
            (psycopg.types.json.Jsonb(doc),),
        )
    build(warehouse, "2026-11-24", tmp_path, "stg_amocrm__stages", "amocrm_stage_mapping", "canonical_stages")
    got = fetch(
        warehouse, "select stage_id, canonical_stage, display_order, probability from staging.stg_amocrm__stages"
    )
    assert sorted((r["stage_id"], r["canonical_stage"], r["display_order"], r["probability"]) for r in got) == [
        ("77:142", "closing", 3, 1),
        ("77:143", "lost", 4, 0),
        ("77:501", "relationship", 1, Decimal("0.3")),
        ("77:502", None, 2, None),
    ]
