"""The nightly sales report built from small published marts (written by SQL, no dbt)."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest

from b2b_pipeline.reporting import ReportError, build_report, latest_dir, read_gate, report_command
from b2b_pipeline.reporting.report_charts import NO_DATA, short_number

from .conftest import AS_OF
from .published_marts import CUSTOMERS, ESCAPE_ME, TABLES, TABLES_WITH_SETTINGS, create_marts, fill_marts, write_gate

CHARTS = (
    "funnel",
    "win_rate",
    "deal_size",
    "sales_cycle",
    "stage_durations",
    "revenue",
    "retention",
    "repeat_purchase",
)
# a unit each chart's axes must name
UNITS = {
    "funnel": "%",
    "win_rate": "%",
    "deal_size": "RUB",
    "sales_cycle": "days",
    "stage_durations": "days",
    "revenue": "RUB",
    "retention": "%",
    "repeat_purchase": "%",
}


class ReportPage(HTMLParser):
    """The data-* hooks of a report page: charts (with their SVGs), tables, gate, links."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self.attrs: list[dict[str, str]] = []
        self.links: dict[str, str] = {}
        self._chart: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.attrs.append({"tag": tag, **a})
        if "data-chart" in a:
            self._chart = a["data-chart"]
            self.charts[self._chart] = {**a, "svgs": 0}
        elif tag == "svg" and self._chart:
            self.charts[self._chart]["svgs"] += 1
        if "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table] = {**a, "rows": []}
        elif tag == "tr" and self._table:
            self.tables[self._table]["rows"].append([])
        elif tag == "td" and self._table:
            self._cell = []
        if "data-link" in a:
            self.links[a["data-link"]] = a.get("href", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._chart = None
        elif tag == "table":
            self._table = None
        elif tag == "td" and self._cell is not None and self._table:
            self.tables[self._table]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def first(self, attribute: str) -> dict[str, str]:
        return next(a for a in self.attrs if attribute in a)


def _page(path: Path) -> tuple[str, ReportPage]:
    text = path.read_text(encoding="utf-8")
    return text, ReportPage(text)


# ------------------------------------------------------------------------------------ unit


def test_short_number() -> None:
    assert short_number(8_725_541) == "8.73M"
    assert short_number(25_000) == "25K"
    # a mantissa that rounds up to 1000 takes the next unit, never "1e+03M"
    assert (short_number(999_999), short_number(999_999_999), short_number(999.9995)) == ("1M", "1B", "1K")
    assert short_number(999_999_999_999_999) == "1.00e+15"
    assert short_number(0) == "0"
    assert short_number(-1_500_000) == "-1.5M"


def test_gate_status_from_gate_json(tmp_path: Path) -> None:
    assert not read_gate(tmp_path, AS_OF).found
    write_gate(tmp_path, AS_OF, passed=False, warnings=("a",))
    gate = read_gate(tmp_path, AS_OF)
    assert (gate.found, gate.passed, gate.warnings, gate.blocked, gate.label) == (True, False, 1, 1, "blocked")
    assert gate.quality_link == "quality.html"  # beside the report, in its folder and in latest/


# ----------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_report_shows_every_chart_with_data(built_report: Path, b2b_home: Path) -> None:
    assert built_report == b2b_home / "reports" / "2026-11-25" / "index.html"
    text, page = _page(built_report)

    assert set(page.charts) == set(CHARTS)
    for name, chart in page.charts.items():
        assert int(chart["data-points"]) > 0, name
        assert chart["svgs"] == 1, name
        assert chart["data-title"], name
        assert UNITS[name] in chart["data-axes"], (name, chart["data-axes"])
        assert f"<title>{chart['data-title']}</title>" in text
    assert "RUB" in page.charts["revenue"]["data-title"]
    # the funnel: 6 recent cohorts of the 8 months, 6 transitions each (post_sale has none)
    assert int(page.charts["funnel"]["data-points"]) <= 6 * 6
    funnel_counts = page.tables["funnel_counts"]
    assert len(funnel_counts["rows"]) == 1 + 7  # the header row and seven stages
    # monthly charts: the month where nothing closed has no win rate, so 7 of 8 points
    assert int(page.charts["win_rate"]["data-points"]) == 7
    assert int(page.charts["revenue"]["data-points"]) == 8
    assert int(page.charts["sales_cycle"]["data-points"]) == 14  # average and median
    assert NO_DATA not in text

    # the header: as-of date, currency, gate status with its link
    assert page.first("data-as-of")["data-as-of"] == "2026-11-25"
    assert page.first("data-currency")["data-currency"] == "RUB"
    gate = page.first("data-gate")
    assert (gate["data-gate"], gate["data-warnings"]) == ("passed", "2")
    # the night's quality page beside the report, in its folder and in latest/ (a copy)
    assert page.links["quality"] == "quality.html"
    quality = (built_report.parent / page.links["quality"]).read_text(encoding="utf-8")
    assert (latest_dir(b2b_home) / page.links["quality"]).read_text(encoding="utf-8") == quality
    assert page.links["dbt_docs"] == ""  # not built: a note, no link

    # top 20 existing customers, largest first, names escaped
    top = page.tables["top_customers"]
    assert int(top["data-rows"]) == 20
    rows = top["rows"][1:]
    assert len(rows) == 20 < CUSTOMERS
    values = [float(r[2].replace(",", "")) for r in rows]
    assert values == sorted(values, reverse=True)
    assert ESCAPE_ME in [r[1] for r in rows]
    assert "&lt;b&gt;&amp;amp; &#34;Co&#34;" in text and "<b>&amp;" not in text  # Jinja2's autoescape
    # reps of the last three months, the owner-less group named
    reps = page.tables["sales_reps"]["rows"][1:]
    assert {r[0] for r in reps} == {"Анна Петрова", "Ivan Smirnov", "(no owner)"}

    # self-contained: no external script, stylesheet, image or font; the charts inline SVG, no raster image
    assert not re.search(r"<script|<link|<img|@import|url\(http|src=\"http", text, re.IGNORECASE)
    assert "http://" not in text.replace("http://www.w3.org/", "")
    assert "https://" not in text and "file://" not in text
    assert "image/png" not in text and "data:image" not in text and "<image" not in text
    assert text.count("<svg") == len(CHARTS)
    # every value axis starts at 0 (retention included: 92 % against 95 % is not a collapse)
    for name, chart in page.charts.items():
        assert chart["data-value-from"] and set(chart["data-value-from"].split(",")) == {"0"}, name
    assert page.charts["retention"]["data-value-from"] == "0,0"

    # report.json and latest/
    meta = json.loads((built_report.parent / "report.json").read_text())
    assert meta["as_of"] == meta["published_as_of"] == "2026-11-25"
    assert meta["currency"] == "RUB"
    assert set(meta["charts"]) == set(CHARTS) and all(v > 0 for v in meta["charts"].values())
    assert meta["gate"]["passed"] is True and meta["gate"]["warnings"] == 2
    assert (latest_dir(b2b_home) / "index.html").read_text(encoding="utf-8") == text


@pytest.mark.integration
def test_latest_is_not_moved_back_by_an_older_night(published: str, b2b_home: Path) -> None:
    build_report(published, AS_OF, b2b_home)
    older = date(2026, 11, 20)
    path = build_report(published, older, b2b_home)
    assert path.parent.name == "2026-11-20"
    assert json.loads((latest_dir(b2b_home) / "report.json").read_text())["as_of"] == "2026-11-25"
    # the older night's page says that the marts are of another night, and has no gate report
    _text, page = _page(path)
    assert page.first("data-banner")["data-banner"] == "stale"
    assert page.first("data-gate")["data-gate"] == "no gate report"


@pytest.mark.integration
def test_blocked_night_is_said_at_the_top(published: str, b2b_home: Path) -> None:
    blocked = date(2026, 11, 26)
    write_gate(b2b_home, blocked, passed=False)
    _text, page = _page(build_report(published, blocked, b2b_home))
    assert page.first("data-gate")["data-gate"] == "blocked"
    assert {a["data-banner"] for a in page.attrs if "data-banner" in a} == {"stale", "blocked"}
    assert page.links["quality"] == "quality.html"
    # the figures are the published night's
    assert page.first("data-as-of")["data-as-of"] == "2026-11-25"


@pytest.mark.integration
def test_empty_marts_give_no_data_charts(warehouse: str, b2b_home: Path) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn)
    text, page = _page(build_report(warehouse, AS_OF, b2b_home))
    assert set(page.charts) == set(CHARTS)
    assert all(c["data-points"] == "0" and c["svgs"] == 1 for c in page.charts.values())
    assert text.count("No data published yet") >= len(CHARTS)
    assert page.tables["top_customers"]["data-rows"] == "0"
    assert page.first("data-as-of")["data-as-of"] == "2026-11-25"


@pytest.mark.integration
def test_no_marts_schema_at_all(warehouse: str, b2b_home: Path) -> None:
    _text, page = _page(build_report(warehouse, AS_OF, b2b_home))
    assert all(c["data-points"] == "0" for c in page.charts.values())
    assert page.first("data-banner")["data-banner"] == "missing"
    with pytest.raises(ReportError, match="no published night"):
        report_command(None, dsn=warehouse)


@pytest.mark.integration
def test_currency_from_the_marts(warehouse: str, b2b_home: Path) -> None:
    tables = dict(TABLES)
    tables["revenue_monthly"] += ", reporting_currency text"
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn, tables=tables)
        fill_marts(conn, AS_OF, months=3)
        conn.execute("update marts.revenue_monthly set reporting_currency = 'eur'")
    text, page = _page(build_report(warehouse, AS_OF, b2b_home))
    assert page.first("data-currency")["data-currency"] == "EUR"
    assert "EUR" in page.charts["revenue"]["data-axes"]
    assert "RUB" not in text


@pytest.mark.integration
def test_the_header_says_the_settings_the_marts_were_built_with(warehouse: str, b2b_home: Path) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn, tables=TABLES_WITH_SETTINGS)
        fill_marts(conn, AS_OF, months=3)
        conn.execute(
            "insert into marts.reporting_settings values (%s, 'EUR', 'RUB', 'Europe/Moscow', 'sales,renewals')",
            (AS_OF,),
        )
    path = build_report(warehouse, AS_OF, b2b_home)
    text, page = _page(path)
    assert page.first("data-currency")["data-currency"] == "EUR"
    assert page.first("data-fx-base")["data-fx-base"] == "RUB"
    assert page.first("data-timezone")["data-timezone"] == "Europe/Moscow"
    assert page.first("data-sales-pipelines")["data-sales-pipelines"] == "sales,renewals"
    assert "data through 23:59 Europe/Moscow" in text
    assert "EUR" in page.charts["revenue"]["data-axes"]
    meta = json.loads((path.parent / "report.json").read_text(encoding="utf-8"))
    assert meta["currency"] == "EUR"
    assert meta["settings"] == {
        "reporting_currency": "EUR",
        "fx_base_currency": "RUB",
        "reporting_timezone": "Europe/Moscow",
        "sales_pipelines": "sales,renewals",
        "published_with_the_marts": True,
    }


@pytest.mark.integration
def test_marts_without_settings_show_the_defaults(published: str, b2b_home: Path) -> None:
    text, page = _page(build_report(published, AS_OF, b2b_home))
    assert page.first("data-currency")["data-currency"] == "RUB"
    assert page.first("data-timezone")["data-timezone"] == "UTC"
    assert page.first("data-sales-pipelines")["data-sales-pipelines"] == "all"
    assert "data-fx-base" not in text  # no conversion through another currency to mention


@pytest.mark.integration
def test_report_command_defaults_to_the_published_night(published: str, b2b_home: Path) -> None:
    path = report_command(None)  # B2B_WAREHOUSE_DSN and B2B_HOME are the fixtures'
    assert path == b2b_home / "reports" / "2026-11-25" / "index.html"
    assert (latest_dir(b2b_home) / "index.html").is_file()
    assert report_command(date(2026, 11, 25)).parent.name == "2026-11-25"
    with pytest.raises(ReportError, match=r"Nights that ran, newest first \(1 in all\): 2026-11-25"):
        report_command(date(2026, 11, 24))  # no night of that date ran


def test_templates_ship_with_the_package() -> None:
    """Every template of the HTML pages matches a `[tool.setuptools.package-data]` pattern: a wheel has them."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    package = root / "plugins" / "b2b_pipeline"
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {p for pattern in patterns["b2b_pipeline"] for p in package.glob(pattern)}
    templates = set(package.glob("*/templates/*"))
    assert {t.relative_to(package).as_posix() for t in templates} >= {
        "reporting/templates/report.html.j2",
        "quality/templates/quality.html.j2",
    }
    assert templates <= shipped


@pytest.mark.integration
def test_the_headline_says_the_currency_and_zone_of_the_marts(warehouse: str) -> None:
    from b2b_pipeline.nightly import headline_metrics

    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn, tables=TABLES_WITH_SETTINGS)
        fill_marts(conn, AS_OF, months=3)
        before = headline_metrics(warehouse, AS_OF)
        conn.execute("insert into marts.reporting_settings values (%s, 'EUR', 'RUB', 'Asia/Tokyo', 'all')", (AS_OF,))
    after = headline_metrics(warehouse, AS_OF)
    assert (before["reporting_currency"], before["reporting_timezone"]) == ("RUB", "UTC")  # no row: the defaults
    assert (after["reporting_currency"], after["reporting_timezone"]) == ("EUR", "Asia/Tokyo")
    assert after["revenue"] == before["revenue"] is not None
