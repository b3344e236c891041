"""The report's headline tiles (the eight measures), the month to date compared like with like, the
charts' axes and the report files' modes."""

from __future__ import annotations

import html
import json
import os
import re
import stat
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import psycopg.rows
import pytest

from b2b_pipeline.reporting import build_report, latest_dir
from b2b_pipeline.reporting.report_charts import retention_chart
from b2b_pipeline.reporting.report_data import days_figures
from b2b_pipeline.reporting.report_tiles import period_of

from .conftest import AS_OF
from .published_marts import SAME_DAYS, create_core, create_marts, fill_core, fill_marts
from .test_report import ReportPage

TILES = (
    "lead_conversion",
    "sales_cycle",
    "avg_deal_size",
    "new_customer_share",
    "repeat_purchase_rate",
    "potential_value",
    "retention_rate",
    "churn_rate",
)
# tile -> (mart, column) of its value in the as-of month's row
MONTHLY = {
    "sales_cycle": ("sales_performance_monthly", "avg_cycle_days"),
    "avg_deal_size": ("sales_performance_monthly", "avg_deal_size"),
    "new_customer_share": ("revenue_monthly", "new_customer_revenue_share"),
    "repeat_purchase_rate": ("repeat_purchase_monthly", "repeat_purchase_rate"),
    "retention_rate": ("retention_monthly", "retention_rate"),
    "churn_rate": ("retention_monthly", "churn_rate"),
}
MONTHLY_CHARTS = ("win_rate", "deal_size", "sales_cycle", "revenue", "retention", "repeat_purchase")


def _tiles(path: Path) -> dict[str, dict[str, str]]:
    page = ReportPage(path.read_text(encoding="utf-8"))
    return {a["data-tile"]: a for a in page.attrs if "data-tile" in a}


def _texts(path: Path) -> dict[str, str]:
    """Each tile's visible text, on one line."""
    text = path.read_text(encoding="utf-8")
    out = {}
    for name in TILES:
        start = text.index(f'data-tile="{name}"')
        end = min(i for i in (text.find("data-tile=", start + 1), text.find("</section>", start)) if i > 0)
        end = text.rfind("<div", start, end) if text.find("data-tile=", start + 1) == end else end
        plain = html.unescape(re.sub(r"<[^>]+>|^[^>]*>", " ", text[start:end]))
        out[name] = re.sub(r"[ \t\n]+", " ", plain).strip()  # the no-break spaces stay
    return out


def _mart(dsn: str, mart: str, column: str, month: date) -> Decimal | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"select {column} from marts.{mart} where month = %s", (month,)).fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------------------------ unit


def test_period_of_a_month_to_date_and_of_a_whole_month() -> None:
    partial = period_of(date(2026, 11, 25))
    assert (partial.partial, partial.label, partial.compare_label) == (
        True,
        "Nov 2026 to date (1–25 Nov)",
        "1–25 Oct",
    )
    whole = period_of(date(2026, 11, 30))
    assert (whole.partial, whole.label, whole.compare_label) == (False, "Nov 2026", "Oct 2026")
    # the previous month is shorter: its last day is the same days' end
    assert period_of(date(2026, 3, 30)).compare_label == "1–28 Feb"


def test_retention_axis_starts_at_zero() -> None:
    """A retention between 92 % and 95 % would autoscale to 92–95 %: the axis must run from 0."""
    rows = [
        {"month": date(2026, m, 1), "retention_rate": Decimal(r), "churn_rate": 1 - Decimal(r)}
        for m, r in ((7, "0.95"), (8, "0.92"), (9, "0.94"), (10, "0.93"))
    ]
    chart = retention_chart(rows, date(2026, 10, 31))
    assert chart.value_from == (0.0, 0.0)
    assert chart.partial == ""  # 31 Oct: a whole month
    partial = retention_chart(rows, date(2026, 10, 12))
    assert partial.partial == "2026-10" and 'id="c-retention-partial-month"' in partial.svg


# ----------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_tiles_show_the_marts_values(built_report: Path, published: str) -> None:
    tiles = _tiles(built_report)
    assert list(tiles) == list(TILES)
    month = AS_OF.replace(day=1)
    for name, (mart, column) in MONTHLY.items():
        expected = _mart(published, mart, column, month)
        assert expected is not None
        assert Decimal(tiles[name]["data-value"]) == expected, name
        assert tiles[name]["data-source"] == f"{mart}.{column}"
    with psycopg.connect(published) as conn:
        potential = conn.execute("select sum(potential_contract_value) from marts.customer_value").fetchone()[0]
        reached = dict(
            conn.execute(
                "select stage_key, sum(deals_reached) from marts.sales_funnel where cohort_month in "
                "(select distinct cohort_month from marts.sales_funnel order by 1 desc limit 6) group by 1"
            ).fetchall()
        )
    assert Decimal(tiles["potential_value"]["data-value"]) == potential
    assert Decimal(tiles["lead_conversion"]["data-value"]) == Decimal(reached["closing"]) / reached["lead"]

    # as shown: money to the unit with thousands separators, shares in per cent
    texts = _texts(built_report)
    assert f"{potential:,.0f}\u00a0RUB" in texts["potential_value"] and "," in f"{potential:,.0f}"
    deal = _mart(published, "sales_performance_monthly", "avg_deal_size", month)
    assert f"{deal:,.0f}\u00a0RUB" in texts["avg_deal_size"]
    churn = _mart(published, "retention_monthly", "churn_rate", month)
    assert f"{churn * 100:.1f}\u00a0%" in texts["churn_rate"]

    meta = json.loads((built_report.parent / "report.json").read_text())
    assert {k: Decimal(v["value"]) for k, v in meta["tiles"].items()} == {
        k: Decimal(t["data-value"]) for k, t in tiles.items()
    }


@pytest.mark.integration
def test_the_month_to_date_is_labelled_and_compared_with_the_same_days(built_report: Path) -> None:
    """As of 25 Nov: November is month to date, compared with 1–25 Oct from the core tables (worked out
    by hand in published_marts.SAME_DAYS), never with the whole of October."""
    text = built_report.read_text(encoding="utf-8")
    page = ReportPage(text)
    assert page.first("data-partial-month")["data-partial-month"] == "2026-11"
    tiles = _tiles(built_report)
    texts = _texts(built_report)
    for name, (_mart_name, column) in MONTHLY.items():
        assert tiles[name]["data-compare"] == "1–25 Oct", name
        assert Decimal(tiles[name]["data-compare-value"]) == SAME_DAYS[column], name
        assert "Nov 2026 to date (1–25 Nov)" in texts[name], texts[name]
    assert "1–25 Oct: 200,000\u00a0RUB" in texts["avg_deal_size"]
    assert "1–25 Oct: 75.0\u00a0%" in texts["retention_rate"]
    # the charts shade the month to date
    for name in MONTHLY_CHARTS:
        assert page.charts[name].get("data-partial") == "2026-11", name
        assert f'id="c-{name}-partial-month"' in text, name
    meta = json.loads((built_report.parent / "report.json").read_text())
    assert meta["month_to_date"] is True
    assert meta["same_days"] == {"start": "2026-10-01", "end": "2026-10-25"}
    assert Decimal(meta["tiles"]["churn_rate"]["compared_with"]) == SAME_DAYS["churn_rate"]


@pytest.mark.integration
def test_a_whole_month_is_compared_with_the_previous_month(warehouse: str, b2b_home: Path) -> None:
    month_end = date(2026, 11, 30)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn)
        fill_marts(conn, month_end)
        create_core(conn)
        fill_core(conn, month_end)
    path = build_report(warehouse, month_end, b2b_home)
    text = path.read_text(encoding="utf-8")
    page = ReportPage(text)
    assert "data-partial-month" not in text and "to date" not in text
    assert all("data-partial" not in chart for chart in page.charts.values())
    tiles = _tiles(path)
    for name, (mart, column) in MONTHLY.items():
        assert tiles[name]["data-compare"] == "Oct 2026", name
        assert Decimal(tiles[name]["data-compare-value"]) == _mart(warehouse, mart, column, date(2026, 10, 1)), name
    assert json.loads((path.parent / "report.json").read_text())["same_days"] is None


@pytest.mark.integration
def test_without_the_core_tables_the_month_to_date_is_not_compared(warehouse: str, b2b_home: Path) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn)
        fill_marts(conn, AS_OF)
    path = build_report(warehouse, AS_OF, b2b_home)
    tiles = _tiles(path)
    assert all("data-compare" not in tiles[name] for name in MONTHLY)
    assert "no like-for-like figure" in path.read_text(encoding="utf-8")
    assert "Oct 2026:" not in path.read_text(encoding="utf-8")  # never the whole previous month
    note = re.search(r'<p class="muted" data-note="partial">(.*?)</p>', path.read_text(encoding="utf-8"), re.S)
    assert note and "its tiles are not compared" in note[1] and "same days of the previous month (" not in note[1]


@pytest.mark.integration
def test_report_files_are_readable_by_all_whatever_the_umask(published: str, b2b_home: Path) -> None:
    from .published_marts import write_gate

    previous = os.umask(0o077)  # as a daemon's may be: the folders 0o700, the gate's files 0o600 here
    try:
        write_gate(b2b_home, AS_OF)
        index = build_report(published, AS_OF, b2b_home)
    finally:
        os.umask(previous)
    latest = latest_dir(b2b_home)
    for path in (index, index.parent / "report.json", latest / "index.html", latest / "report.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((latest / "quality.html").stat().st_mode) == 0o644
    for folder in (index.parent, latest, index.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder


@pytest.mark.integration
def test_the_same_days_count_only_the_pipelines_that_count(warehouse: str) -> None:
    """A's won deal of the 20th is in a pipeline that does not count: the same days leave it out, as the
    marts do (a core published before `is_sales_pipeline` existed counts every deal)."""
    start, end = date(2026, 10, 1), date(2026, 10, 25)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_core(conn)
        fill_core(conn, AS_OF)
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            assert days_figures(cur, "core", start, end)["deals_won"] == SAME_DAYS["deals_won"]
        conn.execute("alter table core.fct_deals add column is_sales_pipeline boolean not null default true")
        conn.execute("update core.fct_deals set is_sales_pipeline = false where amount_reporting = 300000")
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            figures = days_figures(cur, "core", start, end)
    assert (figures["deals_won"], figures["won_amount"]) == (2, Decimal(300_000))  # 100,000 + 200,000
    # A has one counted purchase by the 25th (the 3rd), C one (the month before): no repeat purchase
    assert (figures["customers_with_purchase"], figures["customers_with_repeat_purchase"]) == (2, 0)
    assert figures["revenue"] == SAME_DAYS["revenue"]  # billing does not depend on the pipelines
