"""Acceptance: the marts built through amoCRM, and through Bitrix24, equal the marts built through the
file drop, row for row, for one generated company over two nights with changes and deletions between
them.

One drop serves three paths: the file drop itself (the CRM and billing loaded by the loader), and
each fake (seeded from the same drop, serving it as of its clock; billing still from the drop). The
compared columns are every mart column but the surrogate keys and source ids (`*_key`, `*_id`),
which name the source system by design.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.generate import generate_company
from b2b_pipeline.night import cutoff
from b2b_pipeline.sources.registry import ApiConnection, extract_api
from b2b_pipeline.transform import night_vars, run_dbt
from b2b_pipeline.warehouse import with_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START, END = date(2026, 6, 1), date(2026, 11, 25)
NIGHTS = (date(2026, 11, 23), date(2026, 11, 24))  # the changes below land between them
CHANGES_DAY = NIGHTS[1]
TOKEN = "acceptance-token-7c1d"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _write(folder: Path, name: str, fields: list[str], rows: list[dict[str, str]]) -> None:
    folder.mkdir(exist_ok=True)
    with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*fields, *(["is_deleted"] if "is_deleted" not in fields else [])])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 accounts; the generator's own nightly folder is the drop's last day (after both nights).
    Folders of changes: on the first night's day a new account; on the second night's day that
    account deleted, a deal deleted and a deal renamed."""
    out = tmp_path_factory.mktemp("acceptance") / "drop"
    generate_company(out, seed=11, accounts=30, start=START, end=END, nightly_days=1)
    crm = out / "crm"
    deals, accounts = _rows(crm / "deals.csv"), _rows(crm / "accounts.csv")
    first, second = (f"{night.isoformat()}T10:00:00Z" for night in NIGHTS)
    new = {**accounts[0], "account_id": "9999001", "name": "ООО Удаляемая", "tax_id": "7700000001"}
    new |= {"domain": "udalyaemaya.ru", "created_at": first, "updated_at": first, "is_deleted": "false"}
    _write(crm / NIGHTS[0].isoformat(), "accounts", list(accounts[0]), [new])
    _write(
        crm / NIGHTS[1].isoformat(),
        "accounts",
        list(accounts[0]),
        [{**new, "updated_at": second, "is_deleted": "true"}],
    )
    changed = [
        {**deals[0], "updated_at": second, "is_deleted": "true"},
        {**deals[1], "updated_at": second, "deal_name": "Переименовано", "is_deleted": "false"},
    ]
    _write(crm / NIGHTS[1].isoformat(), "deals", list(deals[0]), changed)
    return out


@contextmanager
def scratch_database(admin_dsn: str, label: str) -> Iterator[str]:
    name = f"b2b_accept_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def drop_marts(
    drop: Path, embedded_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[date, dict[str, list[tuple[Any, ...]]]]:
    """The marts of each night built from the file drop: the expected side, built once for both APIs."""
    tmp = tmp_path_factory.mktemp("acceptance_files")
    expected = {}
    with scratch_database(embedded_admin_dsn, "files") as files:
        load_drop(files, drop)
        for night in NIGHTS:
            build(files, night, "files", tmp)
            expected[night] = marts(files)
    return expected


def build(dsn: str, as_of: date, crm_source: str, tmp: Path) -> None:
    variables = {**night_vars(as_of), "crm_source": crm_source}
    run_dbt(["build"], dsn=dsn, vars=variables, target_path=tmp / "target", log_path=tmp / "logs")


def marts(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every candidate mart, its rows sorted, without the key and id columns."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'marts__candidate' order by 1"
            )
        ]
        for table in tables:
            columns = [
                r[0]
                for r in conn.execute(
                    "select column_name from information_schema.columns where table_schema = 'marts__candidate' "
                    "and table_name = %s order by ordinal_position",
                    (table,),
                )
            ]
            kept = [c for c in columns if not c.endswith(("_key", "_id")) and c != "source_system"]
            query = sql.SQL("select {} from marts__candidate.{}").format(
                sql.SQL(", ").join(map(sql.Identifier, kept)), sql.Identifier(table)
            )
            out[table] = sorted(conn.execute(query).fetchall(), key=repr)
    return out


def serve(source: str, drop: Path) -> Any:
    if source == "amocrm":
        from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM

        return FakeAmoCRM(drop, token=TOKEN)
    from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24

    return FakeBitrix24(drop, webhook_user=1, webhook_secret=TOKEN)


def move_clock(fake: Any, as_of: date) -> None:
    """The fake's clock to the last second of the night's as-of day: it serves what existed then."""
    moment = cutoff(as_of) - timedelta(seconds=1)
    fake.set_clock(moment) if hasattr(fake, "set_clock") else fake.set_now(moment)


def connection(source: str, fake: Any) -> ApiConnection:
    if source == "amocrm":
        return ApiConnection(source, fake.base_url, "test connection b2b_amocrm", TOKEN, {"requests_per_second": "50"})
    return ApiConnection(source, fake.webhook_url, "test connection b2b_bitrix24", "", {"requests_per_second": "50"})


@pytest.mark.parametrize("source", ["amocrm", "bitrix24"])
def test_marts_through_the_api_equal_the_drops(
    source: str,
    drop: Path,
    drop_marts: dict[date, dict[str, list[tuple[Any, ...]]]],
    embedded_admin_dsn: str,
    b2b_home: Path,
    tmp_path: Path,
) -> None:
    with scratch_database(embedded_admin_dsn, source) as api, serve(source, drop) as fake:
        load_drop(api, drop, systems=("billing",))
        for night in NIGHTS:
            move_clock(fake, night)
            landed = extract_api(api, connection(source, fake), home=b2b_home)
            assert landed["rows_landed"] > 0
            build(api, night, source, tmp_path)
            expected, got = drop_marts[night], marts(api)
            assert sorted(got) == sorted(expected)
            for table in expected:
                assert got[table] == expected[table], f"{source}, night {night}: marts.{table} differs"
        with psycopg.connect(api) as conn:
            renamed = conn.execute(
                "select count(*) from intermediate.int_deals_unioned where deal_name = 'Переименовано'"
            ).fetchone()[0]
        assert renamed == 1  # the second night's change came through the API
