"""Acceptance: the marts built through amoCRM, through Bitrix24, and through HubSpot with Stripe, equal
the marts built through the file drop, row for row, for one generated company over two nights with
changes and deletions between them.

One drop serves four paths: the file drop itself (the CRM and billing loaded by the loader), and
each fake (seeded from the same drop, serving it as of its clock). With amoCRM or Bitrix24 billing
still comes from the drop; with HubSpot it comes from Stripe, and only the fx rates from the drop
(no API serves them). Every extraction goes through the night's own step (`nightly.extract`). The
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
from b2b_pipeline.night import Night, cutoff
from b2b_pipeline.nightly import extract
from b2b_pipeline.sources.landing import SourceRefused
from b2b_pipeline.sources.registry import ApiConnection
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


def build(dsn: str, as_of: date, crm_source: str, tmp: Path, billing_source: str = "files") -> None:
    variables = {**night_vars(as_of), "crm_source": crm_source, "billing_source": billing_source}
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
    if source == "bitrix24":
        from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24

        return FakeBitrix24(drop, webhook_user=1, webhook_secret=TOKEN)
    if source == "hubspot":
        from b2b_pipeline.sources.hubspot.fake import FakeHubSpot

        return FakeHubSpot(drop, token=TOKEN, requests_per_second=1000)
    from b2b_pipeline.sources.stripe.fake import FakeStripe

    return FakeStripe(drop, api_key=TOKEN, requests_per_second=1000)


def move_clock(fake: Any, as_of: date) -> None:
    """The fake's clock to the last second of the night's as-of day: it serves what existed then."""
    moment = cutoff(as_of) - timedelta(seconds=1)
    fake.set_clock(moment) if hasattr(fake, "set_clock") else fake.set_now(moment)


def connection(source: str, fake: Any) -> ApiConnection:
    options = {"requests_per_second": "200"}
    if source == "bitrix24":
        return ApiConnection(source, fake.webhook_url, "test connection b2b_bitrix24", "", options)
    if source == "hubspot":
        options["search_requests_per_second"] = "200"
    return ApiConnection(source, fake.base_url, f"test connection b2b_{source}", TOKEN, options)


def night_of(as_of: date, drop: Path) -> Night:
    return Night(as_of=as_of, source_dir=drop)


def assert_marts_equal(dsn: str, expected: dict[str, list[tuple[Any, ...]]], path: str, night: date) -> None:
    got = marts(dsn)
    assert sorted(got) == sorted(expected)
    for table in expected:
        assert got[table] == expected[table], f"{path}, night {night}: marts.{table} differs"


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
        for night in NIGHTS:
            move_clock(fake, night)
            landed = extract(api, night_of(night, drop), "crm", connection(source, fake))
            assert landed["rows_landed"] > 0
            extract(api, night_of(night, drop), "billing")
            build(api, night, source, tmp_path)
            assert_marts_equal(api, drop_marts[night], source, night)
        with psycopg.connect(api) as conn:
            renamed = conn.execute(
                "select count(*) from intermediate.int_deals_unioned where deal_name = 'Переименовано'"
            ).fetchone()[0]
        assert renamed == 1  # the second night's change came through the API


EARLY_SYNC = date(2026, 10, 10)  # more than Stripe's 30 days of events before the first night


def test_marts_through_hubspot_and_stripe_equal_the_drops(
    drop: Path,
    drop_marts: dict[date, dict[str, list[tuple[Any, ...]]]],
    embedded_admin_dsn: str,
    b2b_home: Path,
    tmp_path: Path,
) -> None:
    """No file but the fx rates: CRM from HubSpot, billing from Stripe. A first sync in October; the
    first night, 44 days later, finds Stripe's event cursor past its 30 days and lists everything
    again, while a 429 strikes in the middle of each extraction (HubSpot's deal batch read, Stripe's
    invoice list);
    the second night reads Stripe's events only, and its extractions fail half-way (the credential
    refused mid-paging: the night's extract stops at once) and run again; before it builds, the
    drop's own CRM and billing files land in the same warehouse too, which the night must not read.
    The marts of both nights equal the drop's, and the drop's deletions (a deal archived in HubSpot)
    are gone from them."""
    with (
        scratch_database(embedded_admin_dsn, "hubspot_stripe") as api,
        serve("hubspot", drop) as hubspot,
        serve("stripe", drop) as stripe,
    ):
        crm, billing = connection("hubspot", hubspot), connection("stripe", stripe)

        def night_extract(night: date) -> None:
            landed_crm = extract(api, night_of(night, drop), "crm", crm)
            landed_billing = extract(api, night_of(night, drop), "billing", billing)
            assert landed_crm["source"] == "hubspot" and landed_billing["source"] == "stripe"
            assert landed_billing["files"]["entities"] == ["fx_rates"]  # the rates, from the drop

        for fake in (hubspot, stripe):
            move_clock(fake, EARLY_SYNC)
        night_extract(EARLY_SYNC)
        with psycopg.connect(api) as conn:
            billing_files = conn.execute(
                "select array_agg(distinct entity order by entity) from raw_files.file_loads where system = 'billing'"
            ).fetchone()[0]
        assert billing_files == ["fx_rates"]  # no customer, subscription or invoice file was read

        first, second = NIGHTS
        for fake in (hubspot, stripe):
            move_clock(fake, first)
        # 429s mid-extraction: HubSpot's first batch read of the deals the search found, Stripe's list of
        # invoices after its customers and subscriptions (the fakes' own rate limits are out of the way)
        hubspot.inject_fault("/crm/v3/objects/deals/batch/read", "429")
        stripe.inject_fault("/v1/invoices", "429")
        listed = stripe.request_count("/v1/invoices")
        night_extract(first)
        assert all(fault.count == 0 for fault in (*hubspot.faults, *stripe.faults))  # every 429 struck
        assert stripe.request_count("/v1/invoices") >= listed + 2  # the re-list: the 429, then its retry
        build(api, first, "hubspot", tmp_path, billing_source="stripe")
        assert_marts_equal(api, drop_marts[first], "hubspot+stripe", first)

        for fake in (hubspot, stripe):
            move_clock(fake, second)
        listed, events = stripe.request_count("/v1/invoices"), stripe.request_count("/v1/events")
        token, key = hubspot.token, stripe.api_key
        hubspot.on_request("/crm/v3/objects/deals/search", 1, lambda fake: setattr(fake, "token", "revoked"))
        stripe.on_request("/v1/events", 1, lambda fake: setattr(fake, "api_key", "rk_test_revoked"))
        for system, conn_ in (("crm", crm), ("billing", billing)):
            with pytest.raises(SourceRefused):
                extract(api, night_of(second, drop), system, conn_)
        hubspot.token, stripe.api_key = token, key
        night_extract(second)
        assert stripe.request_count("/v1/invoices") == listed  # within 30 days: the events only
        assert stripe.request_count("/v1/events") > events
        # the drop's CRM and billing files in the same warehouse (a team moving from files to APIs): the
        # night reads only its own sources, so they change nothing
        load_drop(api, drop)
        build(api, second, "hubspot", tmp_path, billing_source="stripe")
        assert_marts_equal(api, drop_marts[second], "hubspot+stripe", second)
        with psycopg.connect(api) as conn:
            renamed = conn.execute(
                "select count(*) from intermediate.int_deals_unioned where deal_name = 'Переименовано'"
            ).fetchone()[0]
            archived = conn.execute("select count(*) from raw_hubspot.deals where is_deleted").fetchone()[0]
        assert renamed == 1 and archived >= 1  # the second night's change and deletion came through HubSpot
