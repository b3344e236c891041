"""fault suite, plausibility

Absurd amounts used to pass the quality gate and be published: a deal of 1e308 RUB, and a headline
that printed float noise for it (`100,000,000,000,000,001,097,906,…`). The gate now checks every
money amount of the core star in the reporting currency against an absolute bound
(`B2B_GATE_MAX_AMOUNT`, default 1e12: blocks) and against the median of the same measure
(`B2B_GATE_OUTLIER_FACTOR`, default 1000 times, with at least 20 rows: warns), and money stays
`numeric` (Decimal, or its exact text) from the marts to every place it is shown.

On a real warehouse: the clean small company of tests/quality (8 deals, as of 2026-03-31), built once
per module into a template database (`template_db` of tests/quality/test_gate.py), each test on a copy
of it (`night_db`) with SQL corruptions of `core__candidate`; the 1e308 deal goes through the real
load and dbt build once (`huge_night`, module scope). Each case's docstring states the expected outcome.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from psycopg import sql
from rich.console import Console

from b2b_pipeline import cli
from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.nightly import headline_metrics
from b2b_pipeline.quality.gate import run_gate
from b2b_pipeline.quality.report import render_html
from b2b_pipeline.quality.result import GateResult
from b2b_pipeline.reporting import build_report
from b2b_pipeline.reporting.report_charts import short_number
from b2b_pipeline.reporting.sales_report import money
from b2b_pipeline.warehouse import with_database
from quality.test_gate import (  # tests/ is on sys.path (rootdir-relative); the gate tests' helpers and fixtures
    AS_OF,
    DEALS_HEADER,
    NIGHT,
    _admin,
    _disconnect,
    blocked,
    build,
    by_name,
    execute,
    night_db,  # noqa: F401 (a fixture)
    template_db,  # noqa: F401 (a fixture)
    write_drop,
)

pytestmark = pytest.mark.integration

BOUND = "core.deals_amount_within_bound"
OUTLIER = "core.deals_amount_outlier"
PLAUSIBILITY = (
    "core.deals_amount_within_bound",
    "core.invoices_amount_within_bound",
    "core.subscriptions_mrr_within_bound",
    "core.deals_amount_outlier",
    "core.invoices_paid_amount_outlier",
    "core.subscriptions_mrr_outlier",
)
E308 = "1" + "0" * 308  # 1e308 as the warehouse's numeric gives it back: 309 digits
# March's won amount with the 1e308 deal: D6 (30,000 RUB) + D8 (20,000 RUB) + 1e308, exactly
WON_MARCH = Decimal("1" + "0" * 303 + "50000")


def plausibility(result: GateResult) -> dict[str, str]:
    return {name: by_name(result)[name].status for name in PLAUSIBILITY}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def huge_night(admin_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """The clean company plus tonight's file with deal D20, won, of 1e308 RUB, loaded and built with dbt
    into the candidates; the marts also copied to `marts`, as if that night had been published."""
    name = f"b2b_huge_{uuid.uuid4().hex[:10]}"
    _disconnect(admin_dsn, template_db)
    _admin(
        admin_dsn, sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template_db))
    )
    dsn = with_database(admin_dsn, name)
    try:
        huge = "D20,A4,U1,Вектор — опечатка,p1,s_won,1e308,RUB,won,2026-03-02T09:00:00Z,2026-03-30T09:00:00Z,,,,"
        drop = write_drop(
            tmp_path_factory.mktemp("huge"),
            {"crm/2026-03-31/deals.csv": f"{DEALS_HEADER}\n{huge}2026-03-30T09:00:00Z,false\n"},
        )
        report = load_drop(dsn, drop)
        assert report.rows_quarantined == 0 and not report.refusals
        build(dsn)
        execute(
            dsn,
            "create schema marts",
            "do $$ declare t text; begin for t in select table_name from information_schema.tables "
            "where table_schema = 'marts__candidate' loop "
            "execute format('create table marts.%I as select * from marts__candidate.%I', t, t); end loop; end $$",
        )
        yield dsn
    finally:
        _admin(admin_dsn, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


# ------------------------------------------------------------------------------------ the bound


@pytest.mark.slow
def test_a_deal_of_1e308_rub_blocks_naming_the_deal(huge_night: str) -> None:
    """Expected: the gate blocks on `core.deals_amount_within_bound` alone, its example names deal D20
    with its amount as the exact 309 digits (not the float 1e+308), and the quality report shows them."""
    result = run_gate(huge_night, NIGHT, layers=("core",))
    assert blocked(result) == {BOUND}
    check = by_name(result)[BOUND]
    assert check.observed == 1  # type: ignore[attr-defined]
    example = check.examples[0]  # type: ignore[attr-defined]
    assert (example["deal_id"], example["currency"], example["status"]) == ("D20", "RUB", "won")
    assert example["amount"] == E308 and example["amount_reporting"] == E308
    assert example["max_amount"] == 1e12  # a float holds 10^12 exactly: stays a JSON number
    assert E308 in render_html(result)  # the quality report does not cut a number at 300 characters
    json.dumps(result.to_dict())


def test_an_amount_just_under_the_bound_passes_and_just_over_blocks(night_db: str) -> None:  # noqa: F811
    """Expected: a deal of 999,999,999,999.99 RUB (1 kopeck under the default bound of 1e12) passes
    every plausibility check; 1,000,000,000,000.01 RUB blocks on `core.deals_amount_within_bound`."""
    execute(
        night_db,
        "update core__candidate.fct_deals set amount = 999999999999.99, amount_reporting = "
        "999999999999.99 where deal_id = 'D1'",
    )
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert result.passed and set(plausibility(result).values()) == {"passed"}

    execute(
        night_db,
        "update core__candidate.fct_deals set amount = 1000000000000.01, amount_reporting = "
        "1000000000000.01 where deal_id = 'D1'",
    )
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert blocked(result) == {BOUND}
    assert [e["deal_id"] for e in by_name(result)[BOUND].examples] == ["D1"]  # type: ignore[attr-defined]
    # a float writes 1000000000000.01 as such: a JSON number, digit for digit
    assert by_name(result)[BOUND].examples[0]["amount_reporting"] == 1000000000000.01  # type: ignore[attr-defined]


def test_the_bound_is_the_setting(night_db: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Expected: with B2B_GATE_MAX_AMOUNT=200000 the deals over 200,000 RUB (D4: 5,000 USD at 95, D7:
    250,000 RUB) block, biggest first, and so does nothing else; a setting that is not a positive
    number stops the gate before any check runs (ValueError naming the variable)."""
    monkeypatch.setenv("B2B_GATE_MAX_AMOUNT", "2e5")
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert blocked(result) == {BOUND}
    examples = by_name(result)[BOUND].examples  # type: ignore[attr-defined]
    assert [(e["deal_id"], e["amount_reporting"], e["max_amount"]) for e in examples] == [
        ("D4", 475000.0, 200000.0),
        ("D7", 250000.0, 200000.0),
    ]
    monkeypatch.setenv("B2B_GATE_MAX_AMOUNT", "lots")
    with pytest.raises(ValueError, match="B2B_GATE_MAX_AMOUNT"):
        run_gate(night_db, NIGHT, layers=("core",))


# ------------------------------------------------------------------------------------ the history


def _more_deals(dsn: str, copies: int) -> None:
    """`copies` more copies of the 8 deals (new ids `D1(0,9)`...), every deal's amount set to 1,000 RUB."""
    execute(
        dsn,
        f"create temp table more_deals as select d.* from core__candidate.fct_deals as d, generate_series(1, {copies})",
        "update more_deals set deal_key = deal_key || ctid::text, deal_id = deal_id || ctid::text",
        "insert into core__candidate.fct_deals select * from more_deals",
        "update core__candidate.fct_deals set amount = 1000, amount_reporting = 1000, currency = 'RUB'",
    )


def test_an_amount_10000_times_the_history_warns_but_does_not_block(night_db: str) -> None:  # noqa: F811
    """Expected: among 32 deals of 1,000 RUB, one of 10,000,000 RUB (10,000 times the median; under the
    bound) makes `core.deals_amount_outlier` warn, naming D7 with the median and the ratio; the night passes."""
    _more_deals(night_db, 3)
    execute(night_db, "update core__candidate.fct_deals set amount = 1e7, amount_reporting = 1e7 where deal_id = 'D7'")
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert result.passed
    assert [c.name for c in result.warnings] == [OUTLIER]
    check = by_name(result)[OUTLIER]
    assert check.severity == "warn" and check.observed == 1  # type: ignore[attr-defined]
    example = check.examples[0]  # type: ignore[attr-defined]
    assert (example["deal_id"], example["amount_reporting"]) == ("D7", 1e7)
    assert (example["median_amount_reporting"], example["times_median"]) == (1000.0, 10000.0)


def test_a_small_company_raises_no_plausibility_alarm(night_db: str) -> None:  # noqa: F811
    """Expected: no plausibility check warns or blocks for a company of one deal, nor for the 8 deals of
    the clean company with one of them 10,000 times the others (fewer than 20 deals: no median to judge
    by), nor on the first night (nothing published: the checks read only the candidates)."""
    execute(night_db, "update core__candidate.fct_deals set amount = 1000, amount_reporting = 1000")
    execute(night_db, "update core__candidate.fct_deals set amount = 1e7, amount_reporting = 1e7 where deal_id = 'D7'")
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert result.passed and result.warnings == []
    assert set(plausibility(result).values()) == {"passed"}

    execute(night_db, "delete from core__candidate.fct_deals where deal_id <> 'D7'")
    result = run_gate(night_db, NIGHT, layers=("core",))
    assert set(plausibility(result).values()) == {"passed"}


# ------------------------------------------------------------------------------------ money shown exactly


@pytest.mark.slow
def test_the_headline_of_a_huge_amount_keeps_every_digit(
    huge_night: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Expected: the summary (the DAG's XCom value) gives March's won amount as the exact decimal text
    1e308 + 50,000, survives JSON and Airflow's XCom serialiser unchanged; `b2b run`'s headline prints it
    with thousands separators, every digit, no float noise and no ellipsis."""
    from airflow.sdk.serde import deserialize, serialize

    summary = headline_metrics(huge_night, AS_OF)
    assert Decimal(summary["won_amount"]) == WON_MARCH and summary["deals_won"] == 3
    assert isinstance(summary["avg_deal_size"], str) and isinstance(summary["win_rate"], str)
    assert json.loads(json.dumps(summary)) == summary
    assert deserialize(serialize(summary)) == summary

    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=600))
    cli._print_headline(huge_night, NIGHT)
    printed = out.getvalue()
    assert f"{WON_MARCH:,}.00" in printed
    assert "…" not in printed and "e+" not in printed
    assert "75.0%" in printed  # the win rate: 3 of the 4 deals closed in March were won (D5 lost)


@pytest.mark.slow
def test_report_money_is_formatted_from_the_exact_decimal(huge_night: str, b2b_home: Path) -> None:
    """Expected: the sales report built on the marts with the 1e308 deal shows the sales rep's won amount
    (U1, January to March: D1 100,000 RUB + D3 1,000 USD at 92.5 + D8 20,000 RUB + D20 1e308 RUB) with
    thousands separators and every digit; the KPI tiles' short form is 1.00e+308 (3 significant digits,
    not 1e+296T); the formatting helpers agree."""
    index = build_report(huge_night, AS_OF, b2b_home)
    text = index.read_text(encoding="utf-8")
    u1 = Decimal("1" + "0" * 302 + "212500")
    assert f"{u1:,}" in text
    assert "1.00e+308\u00a0RUB" in text and "e+296" not in text

    exact = Decimal("12345678901234567890.5")
    assert money(exact, "RUB") == "12,345,678,901,234,567,890\u00a0RUB"  # half to even, from the Decimal
    assert money(Decimal("1234567.49"), "RUB") == "1,234,567\u00a0RUB"
    assert short_number(Decimal("8725541")) == "8.73M" and short_number(Decimal(E308)) == "1.00e+308"
