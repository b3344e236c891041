"""The Stripe staging models (dbt_project/models/staging/stripe) against the file drop's: the fake serves
a generated drop with added customers in JPY (zero-decimal) and KWD (three decimals), the connector
lands it (a night at the cutoff, then the next night, whose later versions the cutoff must ignore),
and each stg_stripe__* table equals, row for row, the stg_files__* table of the same drop as of the
same cutoff, with the same column types; a Stripe customer is matched to the CRM account its drop
row is matched to. One dbt build for the module."""

from __future__ import annotations

import csv
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.sources.landing import land
from b2b_pipeline.sources.stripe.connector import StripeSettings, stripe_source
from b2b_pipeline.sources.stripe.fake import EVENT_RETENTION, FakeStripe, billing_interval
from b2b_pipeline.transform import night_vars, run_dbt
from b2b_pipeline.warehouse import with_database

from .conftest import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = StripeSettings(connection_name="stripe_staging_test", requests_per_second=50, burst=10, timeout=10.0)
ENTITIES = ("customers", "subscriptions", "invoices")
KEYS = {"customers": "customer_id", "subscriptions": "subscription_id", "invoices": "invoice_id"}
CHANGES_DAY = date(2026, 11, 20)  # before the cutoff of the test's night (the drop ends on 2026-11-25)


def yearly_id(prefix: str) -> str:
    """A subscription id the fake bills yearly (the fake picks the interval from the id)."""
    return next(f"{prefix}{n}" for n in range(100) if billing_interval(f"{prefix}{n}") == ("year", 1))


JPY_SUBSCRIPTION = yearly_id("sub_jpy")


def with_other_currencies(drop: Path, out: Path) -> Path:
    """A copy of `drop` with a dated folder of billing before the cutoff: a customer billed in JPY
    (a yearly subscription, a paid invoice) and one in KWD (an open invoice of 12.340 KWD)."""
    shutil.copytree(drop, out)
    folder = out / "billing" / CHANGES_DAY.isoformat()
    folder.mkdir()
    at = f"{CHANGES_DAY.isoformat()}T1{{}}:00:00Z"

    def write(entity: str, rows: list[dict[str, str]]) -> None:
        with (folder / f"{entity}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write(
        "customers",
        [
            {
                "customer_id": "cus_jpy01",
                "name": "Tanaka KK",
                "tax_id": "",
                "email_domain": "tanaka.co.jp",
                "crm_account_id": "",
                "currency": "JPY",
                "created_at": at.format(0),
                "updated_at": at.format(0),
            },
            {
                "customer_id": "cus_kwd01",
                "name": "Gulf Trading WLL",
                "tax_id": "7707083893",
                "email_domain": "",
                "crm_account_id": "",
                "currency": "KWD",
                "created_at": at.format(0),
                "updated_at": at.format(1),
            },
        ],
    )
    write(
        "subscriptions",
        [
            {
                "subscription_id": JPY_SUBSCRIPTION,
                "customer_id": "cus_jpy01",
                "plan": "Enterprise JP",
                "status": "active",
                "mrr_amount": "15000",
                "currency": "JPY",
                "started_at": at.format(1),
                "canceled_at": "",
                "updated_at": at.format(1),
            }
        ],
    )
    write(
        "invoices",
        [
            {
                "invoice_id": "in_jpy01",
                "customer_id": "cus_jpy01",
                "subscription_id": JPY_SUBSCRIPTION,
                "deal_id": "",
                "status": "paid",
                "currency": "JPY",
                "amount_total": "180000",
                "amount_paid": "180000",
                "issued_at": at.format(1),
                "due_at": at.format(2),
                "paid_at": at.format(2),
                "updated_at": at.format(2),
            },
            {
                "invoice_id": "in_kwd01",
                "customer_id": "cus_kwd01",
                "subscription_id": "",
                "deal_id": "",
                "status": "open",
                "currency": "KWD",
                "amount_total": "12.340",
                "amount_paid": "0",
                "issued_at": at.format(2),
                "due_at": at.format(3),
                "paid_at": "",
                "updated_at": at.format(2),
            },
        ],
    )
    return out


@dataclass(frozen=True)
class Built:
    dsn: str
    cutoff: datetime
    first_night: datetime  # the fake's clock of the night at the cutoff


@pytest.fixture(scope="module")
def built(admin_dsn: str, stripe_drop: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """One warehouse: the drop through Stripe (two nights) and through the files, then one dbt build."""
    tmp = tmp_path_factory.mktemp("stripe_staging")
    drop = with_other_currencies(stripe_drop, tmp / "drop")
    name = f"b2b_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = with_database(admin_dsn, name)
    try:
        with FakeStripe(drop, api_key=API_KEY, requests_per_second=1000) as fake:
            end = fake.now
            as_of = (end - timedelta(days=1)).date()
            assert as_of > CHANGES_DAY
            cutoff = datetime.combine(as_of + timedelta(days=1), time(0), UTC)
            fake.set_clock(cutoff - timedelta(seconds=1))  # the night at the cutoff
            first_night = fake.now
            land(dsn, "stripe", stripe_source(fake.base_url, API_KEY, settings=SETTINGS), home=tmp / "home")
            # the next night, with changes after the cutoff that the staging models must not see
            fake.set_clock(max(end, cutoff + timedelta(hours=1)))
            fake.change_record("customers", "cus_jpy01", {"name": "After the cutoff"})
            fake.change_record("customers", "cus_kwd01", delete=True)
            fake.change_record("invoices", "in_kwd01", {"status": "void"})
            fake.change_record("subscriptions", JPY_SUBSCRIPTION, {"mrr_amount": "99000"})
            fake.set_clock(fake.now + timedelta(minutes=1))
            land(dsn, "stripe", stripe_source(fake.base_url, API_KEY, settings=SETTINGS), home=tmp / "home")
        load_drop(dsn, drop)
        run_dbt(
            [
                "build",
                "--select",
                "staging.stripe",
                "staging.files",
                "canonical_stages",
                "+int_billing_customers_matched",
                "+int_subscriptions_unioned",
                "+int_invoices_unioned",
                "--indirect-selection",
                "buildable",
            ],
            dsn=dsn,
            vars=night_vars(as_of, candidates=False, settings={"crm_source": "files", "billing_source": "stripe"}),
            target_path=tmp / "target",
            log_path=tmp / "logs",
        )
        yield Built(dsn, cutoff, first_night)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def fetch(dsn: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


def column_types(dsn: str, table: str) -> dict[str, str]:
    rows = fetch(
        dsn,
        "select attname, format_type(atttypid, atttypmod) as type from pg_attribute "
        f"where attrelid = to_regclass('{table}') and attnum > 0 and not attisdropped",
    )
    return {r["attname"]: r["type"] for r in rows}


def test_the_same_columns_of_the_same_types(built: Built) -> None:
    for entity in ENTITIES:
        files = column_types(built.dsn, f"staging.stg_files__{entity}")
        stripe = column_types(built.dsn, f"staging.stg_stripe__{entity}")
        assert stripe == {c: t for c, t in files.items() if not c.startswith("_")}, entity


@pytest.mark.parametrize("entity", ENTITIES)
def test_stripe_staging_equals_the_file_staging_of_the_same_drop(built: Built, entity: str) -> None:
    files = {r[KEYS[entity]]: r for r in fetch(built.dsn, f"select * from staging.stg_files__{entity}")}
    stripe = {r[KEYS[entity]]: r for r in fetch(built.dsn, f"select * from staging.stg_stripe__{entity}")}
    assert files and set(stripe) == set(files)  # the drop's ids are Stripe's form: the same ids
    columns = [c for c in stripe[next(iter(stripe))] if c != "updated_at"]
    want = Counter(tuple(r[c] for c in columns) for r in files.values())
    got = Counter(tuple(r[c] for c in columns) for r in stripe.values())
    assert want == got, {"missing": sorted(map(str, want - got))[:5], "extra": sorted(map(str, got - want))[:5]}
    # updated_at: Stripe objects have none. A change the events still held is dated exactly; an older
    # one by the latest time the object carries, at or before the change (never after the cutoff)
    window = built.first_night - EVENT_RETENTION
    for key, row in stripe.items():
        truth = files[key]["updated_at"]
        assert row["updated_at"] <= truth, key
        if truth >= window:
            assert row["updated_at"] == truth, key


def test_zero_and_three_decimal_currencies_and_a_yearly_price(built: Built) -> None:
    invoices = {r["invoice_id"]: r for r in fetch(built.dsn, "select * from staging.stg_stripe__invoices")}
    assert (invoices["in_jpy01"]["currency"], invoices["in_jpy01"]["amount_total"]) == ("JPY", Decimal(180000))
    assert invoices["in_jpy01"]["amount_paid"] == Decimal(180000) and invoices["in_jpy01"]["status"] == "paid"
    assert (invoices["in_kwd01"]["amount_total"], invoices["in_kwd01"]["status"]) == (Decimal("12.340"), "open")
    raw = fetch(
        built.dsn,
        f"""select doc from raw_stripe.subscriptions where record_id = '{JPY_SUBSCRIPTION}'
            and updated_at < '{built.cutoff.isoformat()}' order by updated_at desc limit 1""",
    )[0]["doc"]
    item = raw["items"]["data"][0]
    assert item["price"]["recurring"]["interval"] == "year" and item["price"]["currency"] == "jpy"
    assert item["price"]["unit_amount"] * item["quantity"] == 180000  # a year of 15,000 JPY a month
    ((sub,),) = [
        (r["mrr_amount"],)
        for r in fetch(
            built.dsn, f"select * from staging.stg_stripe__subscriptions where subscription_id = '{JPY_SUBSCRIPTION}'"
        )
    ]
    assert sub == Decimal(15000)  # not the 99,000 of after the cutoff
    intervals = {
        (
            d["items"]["data"][0]["price"]["recurring"]["interval"],
            d["items"]["data"][0]["price"]["recurring"]["interval_count"],
        )
        for (d,) in [(r["doc"],) for r in fetch(built.dsn, "select doc from raw_stripe.subscriptions")]
    }
    assert {("year", 1), ("month", 3), ("month", 1)} <= intervals


def test_later_versions_landed_and_the_cutoff_ignored_them(built: Built) -> None:
    after = fetch(
        built.dsn,
        f"""select record_id, is_deleted from raw_stripe.customers where updated_at >= '{built.cutoff.isoformat()}'""",
    )
    assert {(r["record_id"], r["is_deleted"]) for r in after} >= {("cus_jpy01", False), ("cus_kwd01", True)}
    customers = {r["customer_id"]: r for r in fetch(built.dsn, "select * from staging.stg_stripe__customers")}
    assert customers["cus_jpy01"]["customer_name"] == "Tanaka KK" and "cus_kwd01" in customers
    assert customers["cus_jpy01"]["email_domain"] == "tanaka.co.jp" and customers["cus_kwd01"]["tax_id"] == "7707083893"


def test_a_stripe_customer_matches_the_crm_account_of_its_drop_row(built: Built, tmp_path: Path) -> None:
    """The night reads one billing source: built with billing from Stripe, then the two matching models
    again with billing from the drop's files (and back), each Stripe customer gets the match method and
    the CRM account of its drop row."""

    def matched() -> dict[str, dict[str, tuple[str, str | None]]]:
        by_source: dict[str, dict[str, tuple[str, str | None]]] = {}
        for r in fetch(
            built.dsn,
            "select source_system, customer_id, match_method, matched_crm_account_key "
            "from intermediate.int_billing_customers_matched",
        ):
            by_source.setdefault(r["source_system"], {})[r["customer_id"]] = (
                r["match_method"],
                r["matched_crm_account_key"],
            )
        return by_source

    def rebuild(billing_source: str) -> None:
        settings = {"crm_source": "files", "billing_source": billing_source}
        run_dbt(
            ["run", "--select", "int_billing_customers_unioned", "int_billing_customers_matched"],
            dsn=built.dsn,
            vars=night_vars(built.cutoff.date() - timedelta(days=1), candidates=False, settings=settings),
            target_path=tmp_path / "target",
            log_path=tmp_path / "logs",
        )

    through_stripe = matched()
    assert set(through_stripe) == {"stripe"}  # the night's billing source only
    rebuild("files")
    through_files = matched()
    rebuild("stripe")
    assert set(through_files) == {"files"}
    assert through_stripe["stripe"] == through_files["files"]
    methods = Counter(method for method, _ in through_stripe["stripe"].values())
    assert methods["crm_account_id"] and methods["unmatched"]  # by metadata, and the added ones unmatched
    # Stripe's metadata ids are the night's CRM's: an invoice's deal is that CRM's deal
    unioned = fetch(
        built.dsn,
        "select distinct source_system, crm_source_system from intermediate.int_billing_customers_unioned",
    )
    assert {(r["source_system"], r["crm_source_system"]) for r in unioned} == {("stripe", "files")}
    deals = fetch(
        built.dsn,
        "select source_system, count(*) filter (where deal_key like 'files:%%') as n, count(deal_id) as m "
        "from intermediate.int_invoices_unioned group by 1",
    )
    assert [(r["source_system"], r["n"] > 0, r["n"] == r["m"]) for r in deals] == [("stripe", True, True)]
