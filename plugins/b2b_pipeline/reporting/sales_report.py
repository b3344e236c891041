"""The nightly sales report: one self-contained HTML page built from the published marts.

`build_report(dsn, as_of, home)` writes `home/reports/<as_of>/index.html` (and `report.json`, what
it shows in numbers) and refreshes `home/reports/latest/` with the same files and the night's
`quality.html` unless `latest/` already holds a later night. Links (the night's `quality.html`
beside the page, the dbt docs) are relative and work from both folders. The page is the Jinja2
template `templates/report.html.j2`; the tiles are `report_tiles`, the charts `report_charts`.
`report_command(as_of)` is the `b2b report` command's body.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from b2b_pipeline.config import reports_dir
from b2b_pipeline.files import READABLE, open_folder, write_atomically
from b2b_pipeline.page_style import exact, templates, thousands
from b2b_pipeline.quality.report import gate_result_path, html_report_path, report_dir
from b2b_pipeline.reporting.dbt_docs import dbt_docs_page
from b2b_pipeline.reporting.report_charts import Chart, all_charts
from b2b_pipeline.reporting.report_data import (
    PUBLISHED_MARTS_SCHEMA,
    MartsSnapshot,
    latest_published_as_of,
    read_marts,
)
from b2b_pipeline.reporting.report_tiles import Tile, count, days, money, percent, period_of
from b2b_pipeline.reporting.report_tiles import tiles as report_tiles
from b2b_pipeline.stages import cycle_stage_keys
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

LATEST = "latest"
INDEX = "index.html"
META = "report.json"
MONTHS_SHOWN = 24
NIGHTS_LISTED = 10  # nights named when `b2b report --date` names one that never ran
FILE_MODE = READABLE  # 0o644: the report's files, like the gate's, readable by the group and others


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
    quality_link: str | None = None  # relative to the report's folder: the night's quality page beside it

    @property
    def label(self) -> str:
        if not self.found:
            return "no gate report"
        return "passed" if self.passed else "blocked"


def read_gate(home: Path, as_of: date) -> GateStatus:
    """The quality gate's verdict for the night, from `gate.json` next to the report, if any."""
    path = gate_result_path(home, as_of)
    # beside the report: in `<as-of>/`, and in `latest/` (which gets a copy of the night's quality page)
    quality = html_report_path(home, as_of).name if html_report_path(home, as_of).exists() else None
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


# -------------------------------------------------------------------------------------- page

TEMPLATES = Path(__file__).resolve().parent / "templates"  # shipped as package data (pyproject.toml)
PAGE = "report.html.j2"


def amount_text(value: Any) -> str:
    """Money to the unit with thousands separators, from the exact Decimal: 1e308 shows all 309 digits."""
    return thousands(value)


@cache
def _environment() -> Any:
    env = templates(TEMPLATES)
    env.globals["zip"] = zip
    return env


@dataclass(frozen=True)
class Table:
    name: str  # data-table
    head: list[tuple[str, bool]]  # (label, numeric)
    rows: list[list[str]]  # cells as text (escaped by the template)
    names: bool = False  # the text columns hold names (wrapped, not kept on one line)


def _funnel_table(snap: MartsSnapshot) -> Table:
    cohorts = sorted({r["cohort_month"] for r in snap.funnel})
    cell = {(r["cohort_month"], r["stage_key"]): r for r in snap.funnel}
    head = [("Stage reached", False)] + [(f"{c:%b %Y}", True) for c in cohorts]
    rows = []
    for stage in cycle_stage_keys():
        line = [stage.replace("_", "-")]
        for c in cohorts:
            r = cell.get((c, stage))
            line.append(count(r["deals_reached"]) if r else "–")
        rows.append(line)
    return Table("funnel_counts", head, rows if cohorts else [])


def _top_customers(snap: MartsSnapshot) -> Table:
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
                str(c["account_name"]),
                amount_text(pcv),
                amount_text(c["weighted_open_pipeline"] or 0),
                amount_text(c["active_mrr"] or 0),
                percent(pcv / total if total else None),
            ]
        )
    return Table("top_customers", head, rows, names=True)


def _reps(snap: MartsSnapshot) -> Table:
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
            str(r.get("sales_rep_name") or "(no owner)"),
            str(r.get("team") or ""),
            count(r["deals_won"]),
            count(r["deals_lost"]),
            percent(r["win_rate"]),
            amount_text(r["won_amount"] or 0),
            days(r["avg_cycle_days"]),
        ]
        for r in snap.reps
    ]
    return Table("sales_reps", head, rows, names=True)


def render_report(
    snap: MartsSnapshot,
    as_of: date,
    gate: GateStatus,
    charts: Sequence[Chart],
    dbt_docs_link: str | None,
    generated_at: datetime,
    tiles: Sequence[Tile] | None = None,
) -> str:
    """The report as one HTML page (charts already rendered), from the template `templates/report.html.j2`."""
    shown = snap.published_as_of or as_of
    stale = snap.published_as_of is not None and snap.published_as_of != as_of
    page = _environment().get_template(PAGE)
    return page.render(
        title=f"B2B sales report, as of {shown.isoformat()}",
        as_of=as_of.isoformat(),
        shown=shown,
        stale=snap.published_as_of.isoformat() if stale and snap.published_as_of else "",
        period=period_of(shown),
        currency=snap.currency,
        settings=snap.settings,
        schema=snap.schema,
        missing=snap.missing,
        gate=gate,
        docs_link=dbt_docs_link,
        tiles=list(tiles if tiles is not None else report_tiles(snap, shown)),
        charts={c.name: c for c in charts},
        tables={t.name: t for t in (_funnel_table(snap), _top_customers(snap), _reps(snap))},
        customers_count=count(snap.customers.get("customers")),
        customers_value=money(snap.customers.get("potential_value"), snap.currency),
        reps_span=f"{snap.reps_months[0]:%b %Y} to {snap.reps_months[1]:%b %Y}" if snap.reps_months else "",
        same_days=snap.same_days is not None,
        months_shown=MONTHS_SHOWN,
        generated_at=generated_at,
    )


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

    Also writes `report.json` (the as-of dates, the currency, the gate status, the tiles' values, the points
    of each chart) and copies both, with the night's `quality.html`, into `reports/latest/` unless that holds
    a later night's report. Files are `FILE_MODE` and their folders readable by all (`files.open_folder`),
    whatever the umask.
    `currency` overrides the reporting currency (default: the marts' own, marts.reporting_settings).
    """
    home = Path(home)
    snap = read_marts(dsn, as_of=as_of, schema=schema, currency=currency)
    gate = read_gate(home, as_of)
    shown = snap.published_as_of or as_of
    charts = all_charts(snap, shown, MONTHS_SHOWN)
    tiles = report_tiles(snap, shown)
    docs_page = dbt_docs_page(home)
    docs_link = f"../{docs_page.parent.name}/{docs_page.name}" if docs_page.exists() else None
    generated_at = datetime.now(UTC).replace(microsecond=0)
    page = render_report(snap, as_of, gate, charts, docs_link, generated_at, tiles)
    period = period_of(shown)
    meta = {
        "as_of": as_of.isoformat(),
        "published_as_of": snap.published_as_of.isoformat() if snap.published_as_of else None,
        "currency": snap.currency,
        "settings": {
            "reporting_currency": snap.settings.currency,
            "fx_base_currency": snap.settings.fx_base_currency,
            "reporting_timezone": snap.settings.timezone,
            "sales_pipelines": snap.settings.sales_pipelines,
            "published_with_the_marts": snap.settings.published,
        },
        "generated_at": generated_at.isoformat(),
        "month_to_date": period.partial,
        "compared_with": period.compare_label,
        "same_days": (
            {"start": snap.same_days.start.isoformat(), "end": snap.same_days.end.isoformat()}
            if snap.same_days
            else None
        ),
        "gate": {
            "found": gate.found,
            "passed": gate.passed,
            "warnings": gate.warnings,
            "blocked": gate.blocked,
            "quality_report": gate.quality_link,
        },
        "tiles": {
            t.name: {
                "value": None if t.value is None else str(t.value),
                "compared_with": None if not t.compare_label or t.compare_value is None else str(t.compare_value),
            }
            for t in tiles
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
    _write(index, page)
    _write(folder / META, meta_text)
    latest = _latest_as_of(home)
    if latest is None or as_of >= latest:
        # the quality page and the report first, then the meta that names their night
        quality = html_report_path(home, as_of)
        target = latest_dir(home) / quality.name
        if quality.is_file():
            _write(target, quality.read_text(encoding="utf-8"))
        else:
            target.unlink(missing_ok=True)  # not another night's
        _write(latest_dir(home) / INDEX, page)
        _write(latest_dir(home) / META, meta_text)
    else:
        log.info("reports/latest stays at %s (newer than %s)", latest, as_of)
    log.info("sales report for %s: %s", as_of, index)
    return index


def _write(path: Path, text: str) -> None:
    """Write a report file whole (`files.write_atomically`), readable by all: the file `FILE_MODE`, its
    folder and `reports/` opened up (`files.open_folder`): a umask of 077, as daemons often have, would hide
    them."""
    write_atomically(path, text)
    os.chmod(path, FILE_MODE)
    for folder in (path.parent, path.parent.parent):
        open_folder(folder)


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
