"""Changing a reporting setting rebuilds what depends on it: the next night's tables equal, byte for
byte, a full rebuild with the new settings (never old and new numbers mixed in one table), and a
change back gives the first night's tables again. Also: a reporting currency without rates blocks
the night's amounts (they stay NULL, which the gate blocks), and the marts say their settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.generate import generate_company
from b2b_pipeline.night import Night
from b2b_pipeline.quality.gate import run_gate
from b2b_pipeline.transform import night_vars, run_dbt

from .test_incremental import fingerprint

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = dt.date(2026, 3, 31)
EURO_MOSCOW = {"reporting_currency": "EUR", "reporting_timezone": "Europe/Moscow"}


def build(
    dsn: str, tmp_path: Path, settings: dict[str, object], *, full_refresh: bool = False, tests: bool = True
) -> None:
    """`dbt build` (`dbt run` without `tests`: a rebuild compared by fingerprint needs no tests again)."""
    command = ["build" if tests else "run", *(["--full-refresh"] if full_refresh else [])]
    result = run_dbt(
        command,
        dsn=dsn,
        vars=night_vars(AS_OF) | settings,
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )
    assert result.success, [f"{n.unique_id}: {n.message}" for n in result.failed_nodes]


def publish_copy(dsn: str) -> None:
    """The candidate marts as the published ones (what the publish step's swap would leave)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop schema if exists marts cascade")
        conn.execute("create schema marts")
        for (table,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'marts__candidate'"
        ).fetchall():
            conn.execute(f'create table marts."{table}" as table marts__candidate."{table}"')


def test_a_changed_setting_rebuilds_in_full(warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drop = tmp_path / "drop"
    generate_company(drop, seed=5, accounts=40, start=dt.date(2025, 6, 1), end=AS_OF)
    load_drop(warehouse, drop)
    monkeypatch.setenv("B2B_HOME", str(tmp_path / "home"))

    build(warehouse, tmp_path, {})  # the defaults: RUB, UTC
    rub_utc = fingerprint(warehouse)
    publish_copy(warehouse)

    for key, value in EURO_MOSCOW.items():  # the deployment's settings change
        monkeypatch.setenv(f"B2B_{key.upper()}", value)
    build(warehouse, tmp_path, {})  # the incremental models' state says UTC
    euro_moscow = fingerprint(warehouse)
    with psycopg.connect(warehouse) as conn:
        settings = conn.execute(
            "select reporting_currency, fx_base_currency, reporting_timezone, sales_pipelines "
            "from marts__candidate.reporting_settings"
        ).fetchall()
        # every amount not in euros changes with the currency, and a payment made after midnight
        # in Moscow (the generator writes some, at +03:00) changes its day with the zone
        moved = conn.execute(
            "select count(*) filter (where currency <> 'EUR'), "
            "count(*) filter (where paid_date <> (paid_at at time zone 'UTC')::date) "
            "from core__candidate.fct_invoices where is_paid"
        ).fetchone()
    assert settings == [("EUR", "RUB", "Europe/Moscow", "all")]
    assert moved[0] > 0 and moved[1] > 0, moved
    changed = {table for table in rub_utc if rub_utc[table] != euro_moscow.get(table)}
    assert {"core__candidate.fct_deals", "core__candidate.fct_invoices", "marts__candidate.revenue_monthly"} <= changed

    # the gate: the comparisons with the published night (of other settings) are skipped, saying why
    gate = run_gate(warehouse, Night(AS_OF, drop), layers=["marts"])
    checks = {check.name: check for check in gate.checks}
    assert checks["marts.reporting_settings_one_row"].status == "passed"
    assert checks["marts.reporting_settings_are_the_deployments"].status == "passed"
    compared = checks["marts.revenue_rows_vs_published"]
    assert compared.status == "skipped", compared
    assert "reporting_currency RUB -> EUR; reporting_timezone UTC -> Europe/Moscow" in compared.summary

    build(warehouse, tmp_path, {}, full_refresh=True, tests=False)
    assert fingerprint(warehouse) == euro_moscow  # the night after the change was a full rebuild

    # a dbt run with other settings than the gate reads (b2b.yml edited while the night ran): blocked
    build(warehouse, tmp_path, {"reporting_currency": "RUB", "reporting_timezone": "UTC"}, tests=False)
    assert fingerprint(warehouse) == rub_utc  # and back, as a full rebuild again
    gate = run_gate(warehouse, Night(AS_OF, drop), layers=["marts"])
    assert "marts.reporting_settings_are_the_deployments" in {check.name for check in gate.blocking}


def test_a_reporting_currency_without_rates_is_blocked_by_the_gate(
    warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No rate of CHF in the drop: every amount not in CHF has no conversion. The dbt run succeeds,
    the core's amounts stay NULL and the quality gate blocks the night, naming the deals. A rate of
    the base currency (RUB) other than 1 blocks it too: the rates are not quoted in RUB."""
    drop = tmp_path / "drop"
    generate_company(drop, seed=6, accounts=12, start=dt.date(2026, 2, 1), end=AS_OF)
    rates = drop / "billing" / "2026-03-30" / "fx_rates.csv"
    rates.parent.mkdir(parents=True, exist_ok=True)
    rates.write_text("rate_date,currency,rate\n2026-03-30,RUB,0.011\n", encoding="utf-8")
    load_drop(warehouse, drop)
    monkeypatch.setenv("B2B_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("B2B_REPORTING_CURRENCY", "CHF")  # read by night_vars and the gate alike
    for command in (["seed"], ["run"]):  # no tests: dbt's own tests of the core would fail first
        result = run_dbt(
            command, dsn=warehouse, vars=night_vars(AS_OF), target_path=tmp_path / "target", log_path=tmp_path / "logs"
        )
        assert result.success
    with psycopg.connect(warehouse) as conn:
        deals = conn.execute(
            "select count(*), count(amount_reporting) from core__candidate.fct_deals where currency <> 'CHF'"
        ).fetchone()
        (currency,) = conn.execute("select reporting_currency from marts__candidate.reporting_settings").fetchone()
    assert deals[0] > 0 and deals[1] == 0, deals
    assert currency == "CHF"
    gate = run_gate(warehouse, Night(AS_OF, drop), layers=["staging", "core", "marts"])
    assert not gate.passed
    assert {c.name: c.status for c in gate.checks}["marts.reporting_settings_are_the_deployments"] == "passed"
    blocked = {check.name: check for check in gate.blocking}
    assert {"core.deals_amount_converted", "staging.fx_base_currency_at_one"} <= set(blocked), sorted(blocked)
    assert "0.011" in str(blocked["staging.fx_base_currency_at_one"].examples)
    warned = {check.name for check in gate.warnings}
    assert "staging.fx_reporting_currency_rate_recent" in warned  # CHF has no rate at all
    assert gate.settings == {
        "reporting_currency": "CHF",
        "fx_base_currency": "RUB",
        "reporting_timezone": "UTC",
        "sales_pipelines": "all",
    }
