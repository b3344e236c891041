"""The quality gate on a real warehouse: a clean small company passes, each class of bad data is caught.

One dbt build of the clean drop (`drops/clean`, as of 2026-03-31) makes a template database;
every test works on a copy of it (`create database ... template`), loads a bad file on top or
corrupts a candidate table with SQL, and runs the gate (only the layers the test is about,
where that is enough).
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import Engine

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.night import Night
from b2b_pipeline.quality import gate
from b2b_pipeline.quality.freshness import check_freshness, night_selectors
from b2b_pipeline.quality.gate import enforce_gate, run_gate
from b2b_pipeline.quality.report import gate_result_path
from b2b_pipeline.quality.result import GateBlocked, GateResult
from b2b_pipeline.quality.state import accept_raw_batches
from b2b_pipeline.quality.suites import load_suites
from b2b_pipeline.transform.dbt_runner import night_vars, run_dbt
from b2b_pipeline.warehouse import connect, with_database

pytestmark = pytest.mark.integration

AS_OF = date(2026, 3, 31)
DROPS = Path(__file__).parent / "drops"
NIGHT = Night(as_of=AS_OF, source_dir=DROPS / "clean")

ACTIVITIES_HEADER = "activity_id,deal_id,account_id,contact_id,owner_id,channel,occurred_at,updated_at,is_deleted"
DEALS_HEADER = (
    "deal_id,account_id,owner_id,deal_name,pipeline_id,stage_id,amount,currency,status,created_at,closed_at,"
    "expected_close_date,lost_reason,lead_source,updated_at,is_deleted"
)


# ------------------------------------------------------------------------------------ databases


def _admin(admin_dsn: str, statement: sql.Composable, *args: object) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(statement, args or None)


def _disconnect(admin_dsn: str, database: str) -> None:
    _admin(
        admin_dsn,
        sql.SQL(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()"
        ),
        database,
    )


def build(dsn: str) -> None:
    """dbt build of the night into the candidate schemas; every model must build (tests may warn)."""
    with tempfile.TemporaryDirectory() as target:
        result = run_dbt(["build"], dsn=dsn, vars=night_vars(AS_OF), target_path=Path(target), raise_on_failure=False)
    models = [n for n in result.nodes if n.unique_id.startswith("model.")]
    broken = [f"{n.unique_id}: {n.status} {n.message}" for n in models if n.status != "success"]
    assert models and not broken, "dbt models did not build:\n" + "\n".join(broken)


@pytest.fixture(scope="module")
def template_db(admin_dsn: str) -> Iterator[str]:
    """A database with the clean drop loaded (batch 1) and built into core__candidate / marts__candidate."""
    name = f"b2b_gate_tpl_{uuid.uuid4().hex[:10]}"
    _admin(admin_dsn, sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        dsn = with_database(admin_dsn, name)
        report = load_drop(dsn, DROPS / "clean")
        assert report.rows_quarantined == 0 and not report.refusals
        build(dsn)
        _disconnect(admin_dsn, name)
        yield name
    finally:
        _admin(admin_dsn, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def night_db(admin_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh copy of the template: the state right after tonight's dbt build, before the gate."""
    name = f"b2b_gate_{uuid.uuid4().hex[:10]}"
    _disconnect(admin_dsn, template_db)
    _admin(
        admin_dsn, sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template_db))
    )
    try:
        yield with_database(admin_dsn, name)
    finally:
        _admin(admin_dsn, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def execute(dsn: str, *statements: str) -> None:
    with connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def write_drop(root: Path, files: dict[str, str]) -> Path:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def activities(good: int, bad: int) -> str:
    rows = [ACTIVITIES_HEADER]
    rows += [f"X{i},,A1,,U1,email,2026-03-30T10:00:00Z,2026-03-30T10:00:00Z,false" for i in range(good)]
    rows += [f"Y{i},,A1,,U1,fax,2026-03-30T10:00:00Z,2026-03-30T10:00:00Z,false" for i in range(bad)]
    return "\n".join(rows) + "\n"


def by_name(result: GateResult) -> dict[str, object]:
    return {c.name: c for c in result.checks}


def blocked(result: GateResult) -> set[str]:
    return {c.name for c in result.blocking}


# ------------------------------------------------------------------------------------ clean night


@pytest.mark.both_backends  # the gate's SQL on the oldest supported server too
def test_a_clean_night_passes_and_writes_its_reports(night_db: str, b2b_home: Path) -> None:
    outcome = enforce_gate(night_db, NIGHT)
    assert outcome["passed"] is True and outcome["warnings"] == []
    verdict = json.loads(gate_result_path(b2b_home, AS_OF).read_text())
    assert verdict["passed"] is True and verdict["counts"]["blocked"] == 0 and verdict["counts"]["warned"] == 0
    statuses = {c["name"]: c["status"] for c in verdict["checks"]}
    assert len(statuses) > 100 and set(statuses.values()) <= {"passed", "skipped"}
    # nothing published yet: the comparisons with the published marts are skipped, not failed
    assert statuses["marts.customer_value_rows_vs_published"] == "skipped"
    assert {c["layer"] for c in verdict["checks"]} == {"raw", "staging", "core", "marts"}
    assert verdict["schemas"]["core"] == "core__candidate" and verdict["schemas"]["marts"] == "marts__candidate"
    assert Path(outcome["report"]).name == "quality.html" and Path(outcome["report"]).is_file()
    assert "PASSED" in Path(outcome["report"]).read_text()
    assert verdict["data_docs"] and Path(verdict["data_docs"]).is_file()  # GX Data Docs, rendered alongside

    # the passed run covered batch 1: a re-run sees no new batch, which only warns
    again = run_gate(night_db, NIGHT, layers=("raw",))
    assert again.passed and (again.since_batch_id, again.through_batch_id) == (1, 1)
    assert [c.name for c in again.warnings] == ["raw.new_files_loaded"]


# ------------------------------------------------------------------------------------ raw layer


def test_quarantine_over_the_tolerance_blocks_until_a_night_passes_or_an_operator_accepts(
    night_db: str, b2b_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = write_drop(tmp_path, {"crm/2026-03-31/activities.csv": activities(good=18, bad=2)})
    assert load_drop(night_db, drop).rows_quarantined == 2

    # the nightly step, on the raw layer only (the other layers are clean and take time)
    monkeypatch.setattr(gate, "run_gate", functools.partial(gate.run_gate, layers=("raw",)))
    with pytest.raises(GateBlocked) as caught:
        enforce_gate(night_db, NIGHT)
    message = str(caught.value)
    assert "raw.quarantine_share" in message and "activities" in message and "fax" in message
    verdict = json.loads(gate_result_path(b2b_home, AS_OF).read_text())
    assert verdict["passed"] is False and verdict["blocking"] == ["raw.quarantine_share"]
    # tonight's batches: the clean drop (4 activities; no gate has passed it yet) and the new file (20)
    example = by_name(caught.value.result)["raw.quarantine_share"].examples[0]  # type: ignore[attr-defined]
    assert (example["entity"], example["rows_read"], example["rows_quarantined"]) == ("activities", 24, 2)
    assert example["quarantined_share"] == round(2 / 24, 6)

    # a re-run of the blocked night sees the same batches and blocks again
    assert blocked(run_gate(night_db, NIGHT, layers=("raw",))) == {"raw.quarantine_share"}
    accept_raw_batches(night_db, AS_OF, note="test: the fax activities are known junk")
    assert run_gate(night_db, NIGHT, layers=("raw",)).passed


def test_quarantine_under_the_tolerance_only_warns(night_db: str, tmp_path: Path) -> None:
    drop = write_drop(tmp_path, {"crm/2026-03-31/activities.csv": activities(good=199, bad=1)})
    assert load_drop(night_db, drop).rows_quarantined == 1
    result = run_gate(night_db, NIGHT, layers=("raw",))
    assert result.passed
    checks = by_name(result)
    assert checks["raw.quarantine_share"].status == "passed"  # type: ignore[attr-defined]
    warned = checks["raw.quarantine_any"]
    assert warned.status == "warned" and warned.observed == 1  # type: ignore[attr-defined]
    assert warned.examples[0]["entity"] == "activities"  # type: ignore[attr-defined]
    assert "crm/2026-03-31/activities.csv line 201" in warned.examples[0]["first_rejects"]  # type: ignore[attr-defined]


def test_a_refused_file_blocks_until_fixed_in_place(night_db: str, tmp_path: Path) -> None:
    header_without_stage = DEALS_HEADER.replace("stage_id,", "")
    drop = write_drop(tmp_path, {"crm/2026-03-31/deals.csv": header_without_stage + "\n"})
    assert [f.file for f in load_drop(night_db, drop).refusals] == ["crm/2026-03-31/deals.csv"]
    result = run_gate(night_db, NIGHT, layers=("raw",))
    assert blocked(result) == {"raw.files_refused"}
    example = by_name(result)["raw.files_refused"].examples[0]  # type: ignore[attr-defined]
    assert example["file"] == "crm/2026-03-31/deals.csv" and "stage_id" in example["reason"]

    fixed = DEALS_HEADER + "\nD20,A1,U1,Fixed,p1,s_lead,100,RUB,open,2026-03-30T09:00:00Z,,,,,2026-03-30T09:00:00Z,\n"
    write_drop(tmp_path, {"crm/2026-03-31/deals.csv": fixed})
    load_drop(night_db, drop)
    assert run_gate(night_db, NIGHT, layers=("raw",)).passed


# ------------------------------------------------------------------------------------ core layer


def test_unmapped_stage_missing_rate_and_orphan_deal_from_the_drop_block(night_db: str) -> None:
    """Tonight's file brings a deal in a stage the CRM export does not have, a won EUR deal without
    any EUR rate and a deal of an unknown account (1 of 11 deals: over 0.1%)."""
    load_drop(night_db, DROPS / "dirty")
    build(night_db)
    result = run_gate(night_db, NIGHT)
    assert blocked(result) == {
        "core.deals_stage_mapped",
        "core.stage_history_stage_mapped",
        "core.deals_amount_converted",
        "core.deals_account_exists",
    }
    checks = by_name(result)
    assert checks["core.deals_stage_mapped"].examples[0]["current_stage_id"] == "s_ghost"  # type: ignore[attr-defined]
    assert checks["core.deals_amount_converted"].examples[0]["currency"] == "EUR"  # type: ignore[attr-defined]
    orphans = checks["core.deals_account_exists"]
    assert orphans.observed == 1 and orphans.element_count == 11  # type: ignore[attr-defined]
    assert orphans.examples == [{"deal_id": "D11", "crm_account_id": "A99", "account_key": None}]  # type: ignore[attr-defined]


def test_orphans_under_the_tolerance_only_warn(night_db: str) -> None:
    execute(
        night_db,
        # 8 deals x 250 = 2000 more deals, then one orphan among 2008: 0.05% < 0.1%
        "create temp table more_deals as select d.* from core__candidate.fct_deals as d, generate_series(1, 250)",
        "update more_deals set deal_key = deal_key || ctid::text, deal_id = deal_id || ctid::text",
        "insert into core__candidate.fct_deals select * from more_deals",
        "update core__candidate.fct_deals set account_key = null where deal_id = 'D2'",
    )
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert result.passed
    orphans = by_name(result)["core.deals_account_exists"]
    assert orphans.status == "warned" and orphans.success and orphans.observed == 1  # type: ignore[attr-defined]
    assert orphans.element_count == 2008  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("corruption", "expected"),
    [
        (
            "update core__candidate.fct_invoices set amount_paid = -5 where invoice_id = 'I1'",
            {"core.invoices_amount_not_negative.amount_paid"},
        ),
        (
            "update core__candidate.fct_invoices set amount_paid_reporting = null where invoice_id = 'I2'",
            {"core.invoices_paid_amount_converted"},
        ),
        (
            "update core__candidate.fct_subscriptions set canceled_at = started_at - interval '1 day' "
            "where subscription_id = 'S1'",
            {"core.subscriptions_started_before_canceled"},
        ),
        (
            "update core__candidate.dim_stages set canonical_stage_name = null where stage_id = 's_rel'",
            {"core.stages_canonical_known"},
        ),
        (
            "insert into core__candidate.fct_activities select * from core__candidate.fct_activities limit 2",
            {"core.fct_activities_key_unique"},
        ),
        (
            "insert into core__candidate.fct_deal_contacts select * from core__candidate.fct_deal_contacts limit 1",
            {"core.fct_deal_contacts_key_unique"},
        ),
        (
            "update core__candidate.fct_invoices set invoice_key = null where invoice_id = 'I2'",
            {"core.fct_invoices_key_present"},
        ),
    ],
    ids=[
        "negative-amount",
        "missing-rate-paid-invoice",
        "canceled-before-start",
        "unknown-canonical-stage",
        "duplicate-activity",
        "duplicate-deal-contact",
        "missing-key",
    ],
)
def test_bad_core_rows_block(night_db: str, corruption: str, expected: set[str]) -> None:
    execute(night_db, corruption)
    assert blocked(run_gate(night_db, NIGHT, layers=("core",))) == expected


@pytest.mark.both_backends  # the gate's SQL on the oldest supported server too
def test_a_failing_column_check_shows_its_rows_and_the_others_of_its_table_hold(night_db: str) -> None:
    execute(night_db, "update core__candidate.fct_invoices set amount_paid = -5 where invoice_id = 'I1'")
    result = run_gate(night_db, NIGHT, layers=("core",))
    checks = by_name(result)
    broken = checks["core.invoices_amount_not_negative.amount_paid"]
    assert broken.status == "blocked" and broken.observed == 1 and broken.element_count == 5  # type: ignore[attr-defined]
    assert broken.examples == [{"invoice_id": "I1", "amount_paid": -5.0}]  # type: ignore[attr-defined]
    held = checks["core.invoices_amount_not_negative.amount_total"]
    assert held.status == "passed" and held.observed == 0 and held.element_count == 5  # type: ignore[attr-defined]
    assert held.examples == [] and held.summary == "0 of 5 row(s) unexpected"  # type: ignore[attr-defined]


@pytest.mark.parametrize("broken", [200, 250])
def test_a_query_check_counts_all_its_rows_and_shows_the_first(night_db: str, broken: int) -> None:
    """GX keeps the first 200 rows of a query check; the count is of all of them, up to 200 and beyond."""
    execute(
        night_db,
        "create temp table more_subscriptions as select s.* from core__candidate.fct_subscriptions as s, "
        f"generate_series(1, {broken}) where s.subscription_id = 'S1'",
        "update more_subscriptions set subscription_key = subscription_key || ctid::text, "
        "subscription_id = subscription_id || ctid::text, canceled_at = started_at - interval '1 day'",
        "insert into core__candidate.fct_subscriptions select * from more_subscriptions",
    )
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert blocked(result) == {"core.subscriptions_started_before_canceled"}
    check = by_name(result)["core.subscriptions_started_before_canceled"]
    assert check.observed == broken and check.summary == f"{broken} unexpected row(s)"  # type: ignore[attr-defined]
    ids = [e["subscription_id"] for e in check.examples]  # type: ignore[attr-defined]
    assert len(ids) == 5 and ids == sorted(ids) and all(i.startswith("S1(") for i in ids)


def test_a_clean_night_runs_each_check_query_once_and_no_example_query(night_db: str) -> None:
    """What the gate costs on a big company is its passes over the fact tables. On a night where every
    check holds, each query check's SQL runs once (not again inside GX's `SELECT COUNT(*)`), and no
    column check looks for examples (GX's example queries scan the whole table to find nothing)."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((" ".join(statement.split()), parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        result = run_gate(night_db, NIGHT, layers=("core",))
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert result.passed
    queries = [c for c in load_suites(layers=("core",))[0].checks if c.is_query]
    # GX puts the checked table in a query check's SQL as `(SELECT * FROM <table> WHERE true) AS subselect`
    assert len([s for s, _ in statements if re.search(r" AS subselect\b", s)]) == len(queries)
    assert not [s for s, _ in statements if "unexpected_row_count" in s]
    limits = [(s, p[m.group(1)]) for s, p in statements if (m := re.search(r"LIMIT %\((\w+)\)s", s))]
    examples = [s for s, limit in limits if limit != 0 and not s.startswith("SELECT 1 FROM ")]
    assert limits and not examples


# ------------------------------------------------------------------------------------ marts layer


@pytest.mark.parametrize(
    ("corruption", "expected"),
    [
        (
            "update marts__candidate.sales_performance_monthly set won_amount = -1 where month = '2026-02-01'",
            {"marts.sales_performance_not_negative.won_amount"},
        ),
        (
            "update marts__candidate.sales_performance_monthly set win_rate = 1.5 where month = '2026-02-01'",
            {"marts.sales_performance_win_rate_ratio"},
        ),
        (
            "update marts__candidate.retention_monthly set retention_rate = retention_rate / 2 "
            "where retention_rate is not null",
            {"marts.retention_plus_churn_is_one"},
        ),
        (
            "delete from marts__candidate.revenue_monthly where month = '2026-02-01'",
            {"marts.revenue_months_contiguous"},
        ),
        (
            "insert into marts__candidate.repeat_purchase_monthly values ('2026-04-01', 3, 1, 0.333)",
            {"marts.repeat_purchase_no_month_after_as_of"},
        ),
        (
            "delete from marts__candidate.sales_funnel where cohort_month = '2026-03-01' and stage_key = 'lead'",
            {"marts.sales_funnel_stages_per_month"},
        ),
    ],
    ids=["negative-amount", "ratio-over-1", "retention-plus-churn", "month-gap", "month-after-as-of", "funnel-row"],
)
def test_bad_mart_rows_block(night_db: str, corruption: str, expected: set[str]) -> None:
    execute(night_db, corruption)
    assert blocked(run_gate(night_db, NIGHT, layers=("marts",))) == expected


def test_a_mart_collapsing_against_the_published_night_blocks(night_db: str) -> None:
    execute(
        night_db,
        "create schema marts",
        # the published night had three times the rows: tonight lost two thirds (> 50%)
        "create table marts.customer_value as select c.* from marts__candidate.customer_value as c, "
        "generate_series(1, 3)",
        "create table marts.revenue_monthly as select * from marts__candidate.revenue_monthly",
    )
    result = run_gate(night_db, NIGHT, layers=("marts",))
    assert blocked(result) == {"marts.customer_value_rows_vs_published"}
    checks = by_name(result)
    assert checks["marts.revenue_rows_vs_published"].status == "passed"  # type: ignore[attr-defined]
    assert checks["marts.sales_funnel_rows_vs_published"].status == "skipped"  # type: ignore[attr-defined]
    example = checks["marts.customer_value_rows_vs_published"].examples[0]  # type: ignore[attr-defined]
    assert example["published_rows"] == 3 * example["candidate_rows"]

    # re-running an old day legitimately has less than the later night that is published
    execute(night_db, "update marts.customer_value set as_of_date = date '2026-04-30'")
    assert run_gate(night_db, NIGHT, layers=("marts",)).passed


def test_a_missing_candidate_table_blocks(night_db: str) -> None:
    execute(night_db, "drop table marts__candidate.customer_value")
    result = run_gate(night_db, NIGHT, layers=("marts",))
    assert not result.passed
    assert {c.table for c in result.blocking} == {"marts__candidate.customer_value"}
    assert all("does not exist" in (c.error or "") for c in result.blocking)


# ------------------------------------------------------------------------------------ source freshness


def test_night_selectors_check_only_what_the_night_reads() -> None:
    files_only = night_selectors("files", "files")
    assert "source:files.deals" in files_only and "source:files.invoices" in files_only
    assert not any(s.startswith("source:amocrm") for s in files_only)
    from_amocrm = night_selectors("amocrm", "files")
    assert from_amocrm[0] == "source:amocrm"
    assert "source:files.invoices" in from_amocrm and "source:files.deals" not in from_amocrm  # CRM is amoCRM's
    # no file at all but the rates, which no API serves (spec.ALWAYS_FROM_FILES)
    assert night_selectors("hubspot", "stripe") == ["source:hubspot", "source:stripe", "source:files.fx_rates"]


def test_a_stale_source_warns_then_blocks_as_configured(
    night_db: str, b2b_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt source freshness on the night's file-drop tables: the sources' own thresholds (warn after
    36 h, error after 72 h without a load), past error_after blocking unless B2B_SOURCE_FRESHNESS=warn."""
    monkeypatch.setenv("B2B_SOURCE_FRESHNESS", "block")  # the default (the suite turns it off: conftest.py)
    fresh = {c.name: c for c in check_freshness(night_db)}
    assert fresh and {c.status for c in fresh.values()} == {"passed"}
    assert (
        "raw.source_freshness.files.deals" in fresh and "raw.source_freshness.files.users" not in fresh
    )  # no threshold
    assert fresh["raw.source_freshness.files.deals"].observed < 1  # loaded minutes ago (hours)

    execute(
        night_db,
        "update raw_files.file_loads set loaded_at = now() - interval '40 hours' where entity = 'invoices'",
        "update raw_files.file_loads set loaded_at = now() - interval '80 hours' where entity = 'customers'",
        "delete from raw_files.file_loads where entity = 'deal_contacts'",  # as if never delivered
    )
    stale = {c.name: c for c in check_freshness(night_db)}
    invoices, customers = stale["raw.source_freshness.files.invoices"], stale["raw.source_freshness.files.customers"]
    assert (invoices.status, invoices.severity, invoices.observed) == ("warned", "warn", 40.0)
    assert (customers.status, customers.severity, customers.observed) == ("blocked", "block", 80.0)
    assert "80.0 h ago" in customers.summary and "error after 72 h" in customers.summary
    assert stale["raw.source_freshness.files.deal_contacts"].status == "skipped"  # never loaded: not stale
    assert stale["raw.source_freshness.files.deals"].status == "passed"

    # a source the night reads whose tables are missing (amoCRM never extracted here): like past error_after
    missing = check_freshness(night_db, ["source:amocrm"])
    assert missing and all(c.status == "blocked" and "could not be checked" in c.summary for c in missing)

    monkeypatch.setenv("B2B_SOURCE_FRESHNESS", "warn")
    assert {c.name for c in check_freshness(night_db) if c.status != "passed" and c.status != "skipped"} == {
        "raw.source_freshness.files.invoices",
        "raw.source_freshness.files.customers",
    }
    assert not any(c.blocking for c in check_freshness(night_db))
    monkeypatch.setenv("B2B_SOURCE_FRESHNESS", "off")
    assert check_freshness(night_db) == []

    # the nightly step (raw layer only: the others are clean and take time) blocks on the stale source
    monkeypatch.setenv("B2B_SOURCE_FRESHNESS", "block")
    monkeypatch.setattr(gate, "run_gate", functools.partial(gate.run_gate, layers=("raw",)))
    with pytest.raises(GateBlocked) as caught:
        enforce_gate(night_db, NIGHT)
    assert "raw.source_freshness.files.customers" in str(caught.value)
    verdict = json.loads(gate_result_path(b2b_home, AS_OF).read_text())
    assert verdict["blocking"] == ["raw.source_freshness.files.customers"]
    assert "raw.source_freshness.files.invoices" in {c["name"] for c in verdict["checks"] if c["status"] == "warned"}
