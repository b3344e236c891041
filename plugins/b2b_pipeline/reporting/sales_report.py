"""The nightly sales report: one self-contained HTML page built from the published marts.

`build_report(dsn, as_of, home)` writes `home/reports/<as_of>/index.html` (and `report.json`, what
it shows in numbers) and refreshes `home/reports/latest/` with the same files unless `latest/`
already holds a later night. Links (the night's `quality.html`, the dbt docs) are relative and
work from both folders. `report_command(as_of)` is the `b2b report` command's body.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from b2b_pipeline.config import project_root, reports_dir
from b2b_pipeline.files import write_atomically
from b2b_pipeline.page_style import SALES_REPORT, STYLESHEET
from b2b_pipeline.quality.report import gate_result_path, html_report_path, report_dir
from b2b_pipeline.reporting.dbt_docs import dbt_docs_page
from b2b_pipeline.reporting.report_charts import Chart, all_charts, short_number
from b2b_pipeline.reporting.report_data import (
    PUBLISHED_MARTS_SCHEMA,
    MartsSnapshot,
    Row,
    add_months,
    latest_published_as_of,
    month_start,
    read_marts,
)
from b2b_pipeline.stages import cycle_stage_keys
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

LATEST = "latest"
INDEX = "index.html"
META = "report.json"
MONTHS_SHOWN = 24
NIGHTS_LISTED = 10  # nights named when `b2b report --date` names one that never ran


class ReportError(RuntimeError):
    """The report cannot be built (no published night to report on, or a night that never ran)."""


class UnknownNightError(ReportError):
    """`--date` names a night that never ran: its report would show another night's data."""

    def __init__(self, as_of: date, nights: Sequence[date]) -> None:
        self.as_of = as_of
        self.nights = list(nights)
        if not nights:
            message = (
                f"no night of {as_of} ran: no night has run in this warehouse yet "
                "(b2b run --date D --source-dir DIR runs one)"
            )
        else:
            shown = ", ".join(d.isoformat() for d in nights[:NIGHTS_LISTED])
            more = f", and {len(nights) - NIGHTS_LISTED} older" if len(nights) > NIGHTS_LISTED else ""
            message = (
                f"no night of {as_of} ran (no nightly quality gate run is recorded for it, and the published "
                "marts are of another night): its report would show another night's data. "
                f"Nights that ran, newest first ({len(nights)} in all): {shown}{more}"
            )
        super().__init__(message)


def latest_dir(home: Path) -> Path:
    """The latest night's report: `<B2B_HOME>/reports/latest`."""
    return reports_dir(home) / LATEST


def report_page(home: Path, as_of: date) -> Path:
    """The sales report of the night of `as_of`, beside its quality report."""
    return report_dir(home, as_of) / INDEX


# --------------------------------------------------------------------------------- gate status


@dataclass(frozen=True)
class GateStatus:
    found: bool
    passed: bool | None = None
    warnings: int = 0
    blocked: int = 0
    checks: int = 0
    warning_names: tuple[str, ...] = ()
    quality_link: str | None = None  # relative to a report folder

    @property
    def label(self) -> str:
        if not self.found:
            return "no gate report"
        return "passed" if self.passed else "blocked"


def read_gate(home: Path, as_of: date) -> GateStatus:
    """The quality gate's verdict for the night, from `gate.json` next to the report, if any."""
    path = gate_result_path(home, as_of)
    link = f"../{as_of.isoformat()}/{html_report_path(home, as_of).name}"
    quality = link if html_report_path(home, as_of).exists() else None
    if not path.exists():
        return GateStatus(found=False, quality_link=quality)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return GateStatus(found=False, quality_link=quality)
    counts = doc.get("counts") or {}
    warnings = list(doc.get("warnings") or [])
    return GateStatus(
        found=True,
        passed=bool(doc.get("passed")),
        warnings=int(counts.get("warned", len(warnings))),
        blocked=int(counts.get("blocked", len(doc.get("blocking") or []))),
        checks=int(counts.get("checks", len(doc.get("checks") or []))),
        warning_names=tuple(str(w) for w in warnings),
        quality_link=quality,
    )


# -------------------------------------------------------------------------------- formatting

e = html.escape


def exact(value: Any) -> Decimal:
    """A number as an exact Decimal (a Decimal as is, an int exactly, a float by its shortest text)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value) if isinstance(value, int) else Decimal(str(value))


def amount_text(value: Any) -> str:
    """Money to the unit with thousands separators, from the exact Decimal: 1e308 shows all 309 digits."""
    return "–" if value is None else f"{exact(value):,.0f}"


def money(value: Any, currency: str, short: bool = False) -> str:
    if value is None:
        return "–"
    text = short_number(exact(value)) if short else amount_text(value)
    return f"{text}\u00a0{currency}"


def percent(value: Any, decimals: int = 1) -> str:
    return "–" if value is None else f"{float(value) * 100:.{decimals}f}\u00a0%"


def count(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def days(value: Any) -> str:
    return "–" if value is None else f"{float(value):.0f}\u00a0d"


def _by_month(rows: Iterable[Row]) -> dict[date, Row]:
    return {r["month"]: r for r in rows}


# ------------------------------------------------------------------------------------- HTML


def _table(name: str, head: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], classes: str = "") -> str:
    """An HTML table; `head` is (label, numeric) pairs; cells are already-escaped HTML."""
    ths = "".join(f'<th class="num">{e(h)}</th>' if num else f"<th>{e(h)}</th>" for h, num in head)
    body = []
    for row in rows:
        tds = []
        for (_, num), cell in zip(head, row, strict=True):
            cls = ' class="num"' if num else (' class="name"' if classes == "names" else "")
            tds.append(f"<td{cls}>{cell}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(head)}" class="muted">No data published yet.</td></tr>')
    return (
        f'<table data-table="{e(name)}" data-rows="{len(rows)}"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _chart(chart: Chart) -> str:
    return (
        f'<figure class="chart" data-chart="{e(chart.name)}" data-points="{chart.points}" '
        f'data-title="{e(chart.title)}" data-axes="{e(" | ".join(chart.axes))}">'
        f"{chart.svg}<figcaption>{e(chart.caption)}</figcaption></figure>"
    )


def _kpi(name: str, label: str, value: str, prev: str = "") -> str:
    prev_html = f'<div class="prev">{prev}</div>' if prev else ""
    return (
        f'<div class="kpi" data-kpi="{e(name)}"><div class="label">{e(label)}</div>'
        f'<div class="value">{value}</div>{prev_html}</div>'
    )


def _kpis(snap: MartsSnapshot, month: date) -> str:
    cur = snap.currency
    prev_month = add_months(month, -1)
    prev_label = f"{prev_month:%b %Y}"
    perf, rev, ret = _by_month(snap.performance), _by_month(snap.revenue), _by_month(snap.retention)
    p, pp = perf.get(month, {}), perf.get(prev_month, {})
    r, rp = rev.get(month, {}), rev.get(prev_month, {})
    t = ret.get(month, {})
    mtd = f"{month:%b %Y}, to date"
    tiles = [
        _kpi(
            "revenue",
            f"Revenue ({mtd})",
            e(money(r.get("revenue"), cur, short=True)),
            e(f"{prev_label}: {money(rp.get('revenue'), cur, short=True)}"),
        ),
        _kpi(
            "deals_won",
            f"Deals won ({mtd})",
            e(count(p.get("deals_won"))),
            e(f"{money(p.get('won_amount'), cur, short=True)} won · {prev_label}: {count(pp.get('deals_won'))} deals"),
        ),
        _kpi(
            "win_rate",
            f"Win rate ({mtd})",
            e(percent(p.get("win_rate"))),
            e(f"{prev_label}: {percent(pp.get('win_rate'))}"),
        ),
        _kpi(
            "avg_deal_size",
            f"Average won deal ({mtd})",
            e(money(p.get("avg_deal_size"), cur, short=True)),
            e(f"{prev_label}: {money(pp.get('avg_deal_size'), cur, short=True)}"),
        ),
        _kpi(
            "active_customers",
            "Customers with an active subscription",
            e(count(t.get("customers_end"))),
            e(f"churn this month: {percent(t.get('churn_rate'))}"),
        ),
        _kpi(
            "potential_value",
            "Potential value of existing customers",
            e(money(snap.customers.get("potential_value"), cur, short=True)),
            e(f"{count(snap.customers.get('customers'))} existing customers"),
        ),
    ]
    return '<section class="kpis">' + "".join(tiles) + "</section>"


def _funnel_table(snap: MartsSnapshot) -> str:
    cohorts = sorted({r["cohort_month"] for r in snap.funnel})
    cell = {(r["cohort_month"], r["stage_key"]): r for r in snap.funnel}
    head = [("Stage reached", False)] + [(f"{c:%b %Y}", True) for c in cohorts]
    rows = []
    for stage in cycle_stage_keys():
        line = [e(stage.replace("_", "-"))]
        for c in cohorts:
            r = cell.get((c, stage))
            line.append(e(count(r["deals_reached"])) if r else "–")
        rows.append(line)
    return _table("funnel_counts", head, rows if cohorts else [])


def _top_customers(snap: MartsSnapshot) -> str:
    cur = snap.currency
    total = exact(snap.customers.get("potential_value") or 0)
    head = [
        ("#", True),
        ("Customer", False),
        (f"Potential contract value, {cur}", True),
        (f"Weighted open pipeline, {cur}", True),
        (f"Active MRR, {cur}/month", True),
        ("Share of all potential", True),
    ]
    rows = []
    for i, c in enumerate(snap.top_customers, start=1):
        pcv = exact(c["potential_contract_value"] or 0)
        rows.append(
            [
                str(i),
                e(str(c["account_name"])),
                e(amount_text(pcv)),
                e(amount_text(c["weighted_open_pipeline"] or 0)),
                e(amount_text(c["active_mrr"] or 0)),
                e(percent(pcv / total if total else None)),
            ]
        )
    return _table("top_customers", head, rows, classes="names")


def _reps(snap: MartsSnapshot) -> str:
    cur = snap.currency
    head = [
        ("Sales rep", False),
        ("Team", False),
        ("Won", True),
        ("Lost", True),
        ("Win rate", True),
        (f"Won amount, {cur}", True),
        ("Avg cycle, days", True),
    ]
    rows = [
        [
            e(str(r.get("sales_rep_name") or "(no owner)")),
            e(str(r.get("team") or "")),
            e(count(r["deals_won"])),
            e(count(r["deals_lost"])),
            e(percent(r["win_rate"])),
            e(amount_text(r["won_amount"] or 0)),
            e(days(r["avg_cycle_days"])),
        ]
        for r in snap.reps
    ]
    return _table("sales_reps", head, rows, classes="names")


def _gate_html(gate: GateStatus) -> str:
    if not gate.found:
        badge = '<span class="badge unknown">no gate report</span>'
    elif gate.passed:
        badge = '<span class="badge passed">PASSED</span>'
    else:
        badge = '<span class="badge blocked">BLOCKED</span>'
    parts = [badge]
    if gate.found:
        warn_cls = "warn" if gate.warnings else "passed"
        title = e(", ".join(gate.warning_names))
        parts.append(
            f' <span class="badge {warn_cls}" title="{title}">{gate.warnings} warning'
            f"{'' if gate.warnings == 1 else 's'}</span>"
        )
        parts.append(f' <span class="muted">{gate.checks} checks</span>')
    if gate.quality_link:
        parts.append(f' <a href="{e(gate.quality_link)}" data-link="quality">quality report</a>')
    return (
        f'<span class="gate" data-gate="{e(gate.label)}" data-warnings="{gate.warnings}">'
        f"Quality gate: {''.join(parts)}</span>"
    )


def render_report(
    snap: MartsSnapshot,
    as_of: date,
    gate: GateStatus,
    charts: Sequence[Chart],
    dbt_docs_link: str | None,
    generated_at: datetime,
) -> str:
    """The report as one HTML page (charts already rendered)."""
    shown = snap.published_as_of or as_of
    month = month_start(shown)
    by_name = {c.name: c for c in charts}
    banners = []
    if snap.published_as_of is not None and snap.published_as_of != as_of:
        banners.append(
            f'<p class="banner bad" data-banner="stale">The published marts are as of '
            f"<b>{e(snap.published_as_of.isoformat())}</b>, not {e(as_of.isoformat())}: "
            f"the night of {e(as_of.isoformat())} did not publish (see its quality report).</p>"
        )
    if gate.found and not gate.passed:
        banners.append(
            '<p class="banner bad" data-banner="blocked">The quality gate blocked this night: the marts below '
            "are the last published ones.</p>"
        )
    if snap.missing:
        banners.append(
            '<p class="banner" data-banner="missing">Not published: '
            + ", ".join(f"<code>{e(snap.schema)}.{e(m)}</code>" for m in snap.missing)
            + ".</p>"
        )
    docs = (
        f'<a href="{e(dbt_docs_link)}" data-link="dbt_docs">data dictionary (dbt docs)</a>'
        if dbt_docs_link
        else '<span class="muted" data-link="dbt_docs">dbt docs not built yet (<code>b2b report --docs</code>)</span>'
    )
    title = f"B2B sales report, as of {shown.isoformat()}"
    reps_span = f"{snap.reps_months[0]:%b %Y} to {snap.reps_months[1]:%b %Y}" if snap.reps_months else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>{e(title)}</title><style>{STYLESHEET}</style></head><body class="{SALES_REPORT}">',
        '<header class="top"><div class="inner">',
        "<h1>B2B sales report</h1>",
        '<div class="facts">',
        f'<span>As of <b data-as-of="{e(shown.isoformat())}">{shown:%a %d %b %Y}</b> '
        f'<span class="muted">(data through 23:59 UTC)</span></span>',
        f'<span>Currency <b data-currency="{e(snap.currency)}">{e(snap.currency)}</b></span>',
        _gate_html(gate),
        f"<span>{docs}</span>",
        "</div></div></header><main>",
        *banners,
        _kpis(snap, month),
        "<h2>Pipeline and sales</h2>",
        '<div class="grid">',
        _chart(by_name["funnel"]),
        '<div class="card"><b>Deals reached per stage, by cohort month</b>'
        '<p class="muted">Deals created in the month that reached each stage (skipped stages count as passed).</p>'
        + _funnel_table(snap)
        + "</div>",
        _chart(by_name["win_rate"]),
        _chart(by_name["deal_size"]),
        _chart(by_name["sales_cycle"]),
        _chart(by_name["stage_durations"]),
        "</div>",
        "<h2>Revenue and customers</h2>",
        '<div class="grid">',
        _chart(by_name["revenue"]),
        _chart(by_name["retention"]),
        _chart(by_name["repeat_purchase"]),
        "</div>",
        f"<h2>Top {len(snap.top_customers) or 20} existing customers by potential contract value</h2>",
        '<div class="card"><p class="muted">Potential contract value = weighted open pipeline (open deals × '
        "the win probability of their stage) + 12 × active MRR, as of the night. "
        f"All existing customers: {e(count(snap.customers.get('customers')))}, "
        f"{e(money(snap.customers.get('potential_value'), snap.currency))} in all.</p>"
        + _top_customers(snap)
        + "</div>",
        f"<h2>Sales reps, {e(reps_span)}</h2>",
        '<div class="card"><p class="muted">Deals closed in the period, by owner; sorted by won amount.</p>'
        + _reps(snap)
        + "</div>",
        f"<footer>Built {e(generated_at.strftime('%Y-%m-%d %H:%M UTC'))} from the published marts "
        f"(schema <code>{e(snap.schema)}</code>); monthly charts show the last {MONTHS_SHOWN} months. "
        f'Definitions: <a href="{e((project_root() / "docs" / "metrics.md").as_uri())}">docs/metrics.md</a> '
        "of the project, and the data dictionary.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------ build


def _latest_as_of(home: Path) -> date | None:
    try:
        return date.fromisoformat(json.loads((latest_dir(home) / META).read_text(encoding="utf-8"))["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_report(
    dsn: str,
    as_of: date,
    home: Path,
    *,
    currency: str | None = None,
    schema: str = PUBLISHED_MARTS_SCHEMA,
) -> Path:
    """Build the night's report from the published marts; the path of `reports/<as_of>/index.html`.

    Also writes `report.json` (the as-of dates, the currency, the gate status, the points of each
    chart) and copies both into `reports/latest/` unless that holds a later night's report.
    `currency` overrides the reporting currency (default: a currency column of the marts, else
    `b2b_pipeline.config.REPORTING_CURRENCY`).
    """
    home = Path(home)
    snap = read_marts(dsn, as_of=as_of, schema=schema, currency=currency)
    gate = read_gate(home, as_of)
    shown = snap.published_as_of or as_of
    charts = all_charts(snap, shown, MONTHS_SHOWN)
    docs_page = dbt_docs_page(home)
    docs_link = f"../{docs_page.parent.name}/{docs_page.name}" if docs_page.exists() else None
    generated_at = datetime.now(UTC).replace(microsecond=0)
    page = render_report(snap, as_of, gate, charts, docs_link, generated_at)
    meta = {
        "as_of": as_of.isoformat(),
        "published_as_of": snap.published_as_of.isoformat() if snap.published_as_of else None,
        "currency": snap.currency,
        "generated_at": generated_at.isoformat(),
        "gate": {
            "found": gate.found,
            "passed": gate.passed,
            "warnings": gate.warnings,
            "blocked": gate.blocked,
            "quality_report": gate.quality_link,
        },
        "charts": {c.name: c.points for c in charts},
        "tables": {
            "top_customers": len(snap.top_customers),
            "sales_reps": len(snap.reps),
            "funnel_cohorts": len({r["cohort_month"] for r in snap.funnel}),
        },
        "missing_marts": snap.missing,
        "dbt_docs": docs_link,
    }
    meta_text = json.dumps(meta, indent=2) + "\n"
    folder = report_dir(home, as_of)
    index = folder / INDEX
    write_atomically(index, page)
    write_atomically(folder / META, meta_text)
    latest = _latest_as_of(home)
    if latest is None or as_of >= latest:
        # the report first, then the meta that names its night
        write_atomically(latest_dir(home) / INDEX, page)
        write_atomically(latest_dir(home) / META, meta_text)
    else:
        log.info("reports/latest stays at %s (newer than %s)", latest, as_of)
    log.info("sales report for %s: %s", as_of, index)
    return index


def nights_that_ran(dsn: str) -> list[date]:
    """The nights of the warehouse, newest first: the as-of dates of the nightly quality gate's runs in
    `raw_files.gate_runs` (passed or blocked; not the operators' acceptances, and a manual `b2b gate run`
    records nothing), and the published marts' as-of date (a warehouse published without the gate's table)."""
    nights: set[date] = set()
    with connect(dsn) as conn:
        table = conn.execute("select to_regclass('raw_files.gate_runs')").fetchone()
        if table and table[0] is not None:
            rows = conn.execute("select distinct as_of_date from raw_files.gate_runs where not accepted").fetchall()
            nights.update(row[0] for row in rows)
    published = latest_published_as_of(dsn)
    if published is not None:
        nights.add(published)
    return sorted(nights, reverse=True)


def report_command(as_of: date | None = None, *, dbt_docs: bool = False, dsn: str | None = None) -> Path:
    """`b2b report [--date D] [--docs]`: build the report of night D (default: the latest published night).

    With `dbt_docs`, first regenerate the dbt docs (`reports/dbt_docs/`) that the report links to.
    Raises `ReportError` when no date is given and no night has been published, and `UnknownNightError`
    (with the nights that did run) when D is not one of `nights_that_ran`: the marts hold only the
    published night, so the report of a night that never ran would show another night's data.
    """
    from b2b_pipeline.config import b2b_home
    from b2b_pipeline.warehouse import warehouse_dsn

    home = b2b_home()
    dsn = dsn or warehouse_dsn(home)
    if as_of is None:
        as_of = latest_published_as_of(dsn)
        if as_of is None:
            raise ReportError(
                "no published night: marts.customer_value is missing or empty; run a night first "
                "or name one with --date"
            )
    else:
        nights = nights_that_ran(dsn)
        if as_of not in nights:
            raise UnknownNightError(as_of, nights)
    if dbt_docs:
        from b2b_pipeline.reporting.dbt_docs import build_dbt_docs

        build_dbt_docs(dsn, home, as_of=as_of)
    return build_report(dsn, as_of, home)
