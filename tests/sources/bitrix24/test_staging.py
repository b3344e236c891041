"""The Bitrix24 staging models against the file drop's: the same generated drop, served by the fake
portal and landed by the connector on two nights, and loaded as files; `stg_bitrix24__X` must equal
`stg_files__X` as of each night's cutoff, row for row, on every column Bitrix24 carries
(MAPPING.md), with the same column types. A deal deleted on the portal between the nights is gone
from the deals, their history and contact links, while an activity keeps pointing at it. And the
models build, empty, on a warehouse where Bitrix24 never landed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.generate import generate_company
from b2b_pipeline.sources.bitrix24.connector import Bitrix24Settings, bitrix24_source
from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24
from b2b_pipeline.sources.landing import land
from b2b_pipeline.transform import night_vars, run_dbt

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]  # the server too: see tests/conftest.py

AS_OF_1, AS_OF_2 = date(2026, 11, 23), date(2026, 11, 25)
SETTINGS = Bitrix24Settings(
    lookback_seconds=3600.0, requests_per_second=200.0, burst=50, backoff_factor=0.01, max_delay=2.0
)
SELECT = ["staging.bitrix24", "bitrix24_stage_mapping"]

# entity -> (key columns, the other columns Bitrix24 carries). Not compared (MAPPING.md, "Not carried"):
# a user's and a stage's updated_at (the API has no change time: when the version was first read), a
# deal's updated_at (DATE_MODIFY also moves when its contact links change), a link's updated_at (its
# deal's DATE_MODIFY).
CARRIED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "users": (("user_id",), ("full_name", "email", "team", "is_active")),
    "accounts": (
        ("account_id",),
        (
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
        ("contact_id",),
        ("account_id", "full_name", "email", "phone", "job_title", "created_at", "updated_at"),
    ),
    "stages": (("stage_id",), ("pipeline_id", "stage_name", "canonical_stage", "display_order", "probability")),
    "deals": (
        ("deal_id",),
        (
            "account_id",
            "owner_user_id",
            "pipeline_id",
            "stage_id",
            "deal_name",
            "status",
            "currency",
            "lost_reason",
            "lead_source",
            "amount",
            "expected_close_date",
            "created_at",
            "closed_at",
        ),
    ),
    "deal_stage_history": (("deal_id", "stage_id", "entered_at"), ()),
    "deal_contacts": (("deal_id", "contact_id"), ("role",)),
    "activities": (
        ("activity_id",),
        ("deal_id", "account_id", "contact_id", "owner_user_id", "channel", "occurred_at", "updated_at"),
    ),
}
# Bitrix24 keeps a user's drop id only in XML_ID, read with var('bitrix24_user_xml_id'): by default
# user ids are the portal's, mapped back here with the fake's drop_id()
USER_COLUMNS = ("user_id", "owner_user_id")
# the fake writes an activity's ORIGINATOR_ID/ORIGIN_ID into its contact's COMMUNICATIONS entry, not at
# the top level where crm.activity.list has them: activity ids are then the portal's, mapped back here
# the file drop keeps what Bitrix24 drops with a deal or a contact: compare the current ones' only
# (and stg_files__deal_stage_history keeps entries at or after the cutoff, which the intermediate model
# drops: stg_bitrix24__deal_stage_history drops them already)
FILES_WHERE = {
    "deal_stage_history": ("deal_id in (select deal_id from staging.stg_files__deals) and entered_at < {cutoff}"),
    "deal_contacts": (
        "deal_id in (select deal_id from staging.stg_files__deals)"
        " and contact_id in (select contact_id from staging.stg_files__contacts)"
    ),
}


def cutoff(as_of: date) -> datetime:
    return datetime.combine(as_of + timedelta(days=1), time(), UTC)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b24stg")
    generate_company(out, seed=7, accounts=8, start=date(2026, 1, 1), end=AS_OF_2, nightly_days=2)
    return out


@pytest.fixture
def fake(drop: Path) -> Iterator[FakeBitrix24]:
    # each night reads the portal a second before its cutoff: a deletion it finds is dated then
    with FakeBitrix24(
        drop,
        webhook_user=5,
        webhook_secret="stg-secret",
        now=cutoff(AS_OF_1) - timedelta(seconds=1),
        rate=1000,
        burst=1000,
    ) as f:
        yield f


def query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def seed_canonical_stages(dsn: str, tmp_path: Path) -> None:
    """The rest of the project as a warehouse has it: the canonical stages the mapping refers to."""
    dbt(dsn, ["seed", "--select", "canonical_stages"], AS_OF_2, tmp_path)


def build(dsn: str, select: list[str], as_of: date, tmp_path: Path) -> None:
    dbt(dsn, ["build", "--select", *select], as_of, tmp_path)


def dbt(dsn: str, command: list[str], as_of: date, tmp_path: Path) -> None:
    result = run_dbt(
        command,
        dsn=dsn,
        vars=night_vars(as_of, candidates=False),
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
        threads=2,
    )
    assert result.success and not result.failed_nodes
    assert not result.warned_nodes, [n.unique_id for n in result.warned_nodes]


def column_types(dsn: str, table: str) -> dict[str, str]:
    return dict(
        query(
            dsn,
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = 'staging' and table_name = '{table}' order by ordinal_position",
        )
    )


def normal(value: Any) -> Any:
    return value.normalize() if isinstance(value, Decimal) else value


def compare(dsn: str, fake: FakeBitrix24, entity: str, as_of: date, gone_deals: set[str]) -> dict[str, int]:
    """Asserts stg_bitrix24__<entity> equals stg_files__<entity> on the carried columns; returns the
    row count and how many rows differ on the columns not compared."""
    key, carried = CARRIED[entity]
    files_types = {c: t for c, t in column_types(dsn, f"stg_files__{entity}").items() if c not in ("_file", "_line")}
    bitrix_types = column_types(dsn, f"stg_bitrix24__{entity}")
    assert {c: bitrix_types.get(c) for c in files_types} == files_types, entity

    columns = (*key, *carried)
    where = FILES_WHERE.get(entity, "true").format(cutoff=f"'{cutoff(as_of).isoformat()}'")
    truth = query(dsn, f"select {', '.join(columns)} from staging.stg_files__{entity} where {where}")
    if "deal_id" in key:  # deleted on the portal (after the drop was written)
        truth = [r for r in truth if r[key.index("deal_id")] not in gone_deals]
    got = query(dsn, f"select {', '.join(columns)} from staging.stg_bitrix24__{entity}")
    portal_ids = {columns.index(c): "users" for c in USER_COLUMNS if c in columns}
    if entity == "activities" and not query(dsn, "select 1 from raw_bitrix24.activities where doc ? 'ORIGIN_ID'"):
        portal_ids[0] = "activities"

    def as_drop(row: tuple) -> tuple:
        out = list(row)
        for i, name in portal_ids.items():
            if i < len(out) and out[i] is not None:
                out[i] = fake.drop_id(name, out[i])
        return tuple(out)

    want = {r[: len(key)]: tuple(map(normal, r)) for r in truth}
    have = {r[: len(key)]: r for r in (tuple(map(normal, as_drop(r))) for r in got)}
    assert len(have) == len(got), f"{entity}: duplicate keys"
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    assert not missing and not extra, f"{entity}: missing {missing[:5]}, extra {extra[:5]}"
    differ = {k: (want[k], have[k]) for k in want if want[k] != have[k]}
    assert not differ, f"{entity}: {len(differ)} rows differ, e.g. {list(differ.items())[:3]}"
    out = {"rows": len(want)}
    if "updated_at" not in columns and "updated_at" in files_types:  # not carried: how often it differs
        moved = f"select {', '.join(key)}, updated_at from staging.stg_{{}}__{entity}"
        files_at = {r[:-1]: r[-1] for r in query(dsn, moved.format("files"))}
        bitrix_at = {as_drop(r[:-1]): r[-1] for r in query(dsn, moved.format("bitrix24"))}
        out["updated_at_differs"] = sum(1 for k, v in bitrix_at.items() if files_at.get(k) != v)
    return out


def test_bitrix24_staging_equals_the_file_staging(
    drop: Path, fake: FakeBitrix24, warehouse: str, tmp_path: Path
) -> None:
    land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=SETTINGS), home=tmp_path)
    # the second night: a deal with stage history, contacts and activities is deleted on the portal
    fake.set_now(cutoff(AS_OF_2) - timedelta(seconds=1))
    deals = fake._store.current("deals", fake.now())
    linked = {k[0] for k in fake._store.current("deal_contacts", fake.now())}
    touched = {row.get("deal_id") for _, row in fake._store.current("activities", fake.now()).values()}
    history = {deal for _, deal, _ in fake._store.history}
    gone = sorted(k[0] for k in deals if k[0] in linked and k[0] in touched and k[0] in history)[0]
    fake.change("deals", "delete", gone)
    land(warehouse, "bitrix24", bitrix24_source(fake.webhook_url, settings=SETTINGS), home=tmp_path)
    load_drop(warehouse, drop)
    seed_canonical_stages(warehouse, tmp_path)

    select = [*SELECT, "staging.files"]
    build(warehouse, select, AS_OF_1, tmp_path)
    counts_1 = {entity: compare(warehouse, fake, entity, AS_OF_1, set()) for entity in CARRIED}
    build(warehouse, select, AS_OF_2, tmp_path)
    counts_2 = {entity: compare(warehouse, fake, entity, AS_OF_2, {gone}) for entity in CARRIED}
    print(f"as of {AS_OF_1}: {counts_1}\nas of {AS_OF_2}: {counts_2}")
    for entity in ("accounts", "contacts", "deals", "deal_stage_history", "deal_contacts", "activities", "stages"):
        assert counts_2[entity]["rows"] > 0, entity
    assert counts_1["deals"]["rows"] > 0

    # the deleted deal: gone, with its history and links; an activity still names it (an orphan, not a NULL)
    assert not query(warehouse, f"select 1 from staging.stg_bitrix24__deals where deal_id = '{gone}'")
    assert not query(warehouse, f"select 1 from staging.stg_bitrix24__deal_contacts where deal_id = '{gone}'")
    assert not query(warehouse, f"select 1 from staging.stg_bitrix24__deal_stage_history where deal_id = '{gone}'")
    assert query(warehouse, f"select 1 from staging.stg_bitrix24__activities where deal_id = '{gone}'")


# A small portal as Bitrix24 sets one up (what the fake never shows): the standard funnel and a second
# one whose stages repeat its STATUS_IDs behind C1:, stages the seed does not name, no UF_CRM_CLOSED_AT
# (closed_at from the stage history), an empty first e-mail, provider activities.
PORTAL: dict[str, list[tuple[str, dict]]] = {
    "deal_categories": [("0", {"id": 0, "name": "General"}), ("1", {"id": 1, "name": "Partners"})],
    "deal_stages": [
        (sid, {"STATUS_ID": sid, "NAME": name, "SORT": sort, "CATEGORY_ID": cat, "SEMANTICS": sem})
        for sid, name, sort, cat, sem in (
            ("NEW", "New", "10", None, None),
            ("PREPARATION", "Preparing documents", "20", None, None),
            ("WON", "Deal won", "60", None, "S"),
            ("LOSE", "Deal lost", "70", None, "F"),
            ("C1:NEW", "New", "10", "1", None),
            ("C1:UC_PILOT", "Pilot", "15", "1", None),
            ("C1:WON", "Won", "20", "1", "S"),
            ("C1:UC_NOBUDGET", "No budget", "30", "1", "F"),
        )
    ],
    "users": [("1", {"ID": "1", "NAME": "Anna", "SECOND_NAME": "", "LAST_NAME": "Smirnova", "ACTIVE": True})],
    "contacts": [
        (
            "3",
            {
                "ID": "3",
                "NAME": "Ivan",
                "LAST_NAME": "Petrov",
                "COMPANY_ID": "0",
                "DATE_CREATE": "2026-11-02T10:00:00+03:00",
                "EMAIL": [{"VALUE": "", "TYPE_ID": "EMAIL"}, {"VALUE": "ivan@example.ru", "TYPE_ID": "EMAIL"}],
            },
        )
    ],
    "deals": [
        (
            "1",
            {
                "ID": "1",
                "TITLE": "Partner deal",
                "CATEGORY_ID": "1",
                "STAGE_ID": "C1:WON",
                "STAGE_SEMANTIC_ID": "S",
                "CLOSED": "Y",
                "CLOSEDATE": "2026-11-20T00:00:00+03:00",
                "OPPORTUNITY": "1500.50",
                "CURRENCY_ID": "rub",
                "COMPANY_ID": "7",
                "ASSIGNED_BY_ID": "1",
                "DATE_CREATE": "2026-11-01T09:00:00+03:00",
            },
        ),
        ("2", {"ID": "2", "CATEGORY_ID": "0", "STAGE_ID": "NEW", "STAGE_SEMANTIC_ID": "P", "CLOSED": "N"}),
    ],
    "stage_history": [
        (
            "10",
            {"ID": 10, "TYPE_ID": 1, "OWNER_ID": 1, "STAGE_ID": "C1:NEW", "CREATED_TIME": "2026-11-01T09:00:00+03:00"},
        ),
        (
            "11",
            {"ID": 11, "TYPE_ID": 3, "OWNER_ID": 1, "STAGE_ID": "C1:WON", "CREATED_TIME": "2026-11-18T15:00:00+03:00"},
        ),
    ],
    "activities": [
        (
            "5",
            {
                "ID": "5",
                "TYPE_ID": "6",
                "PROVIDER_ID": "REST_APP",
                "PROVIDER_TYPE_ID": "WEBINAR",
                "OWNER_TYPE_ID": "2",
                "OWNER_ID": "1",
            },
        ),
        ("6", {"ID": "6", "TYPE_ID": "3", "PROVIDER_ID": "CRM_TASKS_TASK", "OWNER_TYPE_ID": "3", "OWNER_ID": "3"}),
    ],
}


def land_portal(dsn: str) -> None:
    """PORTAL's records as the connector lands them (one version each; the lists' updated_at NULL)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema raw_bitrix24")
        for table, records in PORTAL.items():
            conn.execute(
                f"create table raw_bitrix24.{table} (record_id text not null, updated_at timestamptz,"
                " is_deleted boolean not null, doc jsonb not null, _version text not null,"
                " _extracted_at timestamptz not null, _dlt_load_id text not null, _dlt_id text not null)"
            )
            listed = table in ("users", "deal_categories", "deal_stages")
            for record_id, doc in records:
                changed = doc.get("CREATED_TIME") or doc.get("DATE_CREATE") or "2026-11-21T12:00:00+03:00"
                conn.execute(
                    f"insert into raw_bitrix24.{table} values (%s, %s, false, %s, %s, now(), '1', %s)",
                    (record_id, None if listed else changed, Jsonb(doc), record_id, f"{table}-{record_id}"),
                )


def test_bitrix24_staging_builds_empty_where_bitrix24_never_landed_then_reads_a_standard_portal(
    warehouse: str, tmp_path: Path
) -> None:
    dbt(warehouse, ["seed", "--select", "canonical_stages", "bitrix24_stage_mapping"], AS_OF_2, tmp_path)
    build(warehouse, ["staging.bitrix24"], AS_OF_2, tmp_path)
    for entity in CARRIED:
        assert query(warehouse, f"select count(*) from staging.stg_bitrix24__{entity}") == [(0,)], entity
    assert not query(warehouse, "select 1 from information_schema.schemata where schema_name = 'raw_bitrix24'")

    land_portal(warehouse)  # requisites and deal_contacts never landed: still read as empty
    build(warehouse, ["staging.bitrix24"], AS_OF_2, tmp_path)
    stages = query(
        warehouse,
        "select stage_id, pipeline_id, display_order, canonical_stage, probability"
        " from staging.stg_bitrix24__stages order by pipeline_id, display_order",
    )
    assert [(s[0], s[1], s[2], s[3], normal(s[4]) if s[4] is not None else None) for s in stages] == [
        ("NEW", "General", 1, "lead", Decimal("0.1")),
        ("PREPARATION", "General", 2, "proposal", Decimal("0.3")),
        ("WON", "General", 3, "closing", Decimal("1")),
        ("LOSE", "General", 4, "lost", Decimal("0")),
        ("C1:NEW", "Partners", 1, "lead", Decimal("0.1")),
        ("UC_PILOT", "Partners", 2, None, None),  # in process and not in the seed: unmapped
        ("C1:WON", "Partners", 3, "closing", Decimal("1")),
        ("UC_NOBUDGET", "Partners", 4, "lost", Decimal("0")),  # by its semantics (F)
    ]
    deals = query(
        warehouse,
        "select deal_id, account_id, owner_user_id, pipeline_id, stage_id, status, currency, amount,"
        " expected_close_date, closed_at from staging.stg_bitrix24__deals order by deal_id",
    )
    assert deals == [
        ("1", "7", "1", "Partners", "C1:WON", "won", "RUB", Decimal("1500.50"), date(2026, 11, 20),
         datetime(2026, 11, 18, 12, tzinfo=UTC)),
        ("2", None, None, "General", "NEW", "open", None, None, None, None),
    ]  # fmt: skip
    assert query(warehouse, "select deal_id, stage_id from staging.stg_bitrix24__deal_stage_history order by 2") == [
        ("1", "C1:NEW"),
        ("1", "C1:WON"),
    ]
    assert query(warehouse, "select contact_id, account_id, full_name, email from staging.stg_bitrix24__contacts") == [
        ("3", None, "Ivan Petrov", "ivan@example.ru")
    ]
    assert query(warehouse, "select user_id, full_name, is_active from staging.stg_bitrix24__users") == [
        ("1", "Anna Smirnova", True)
    ]
    assert query(
        warehouse,
        "select activity_id, deal_id, contact_id, channel from staging.stg_bitrix24__activities order by 1",
    ) == [("5", "1", None, "webinar"), ("6", None, "3", "other")]
