"""The steps of one night that are not a layer's own: extract from the drop, the headline, the report.

The DAG's tasks and the CLI call these; a night itself (`Night`, its as-of date and cutoff) is
`b2b_pipeline.night`. This module sits above the layers it strings together (filedrop, the
marts, reporting), and no layer imports it.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from b2b_pipeline.config import b2b_home
from b2b_pipeline.filedrop.loader import LoadReport, load_drop
from b2b_pipeline.filedrop.spec import ALWAYS_FROM_FILES
from b2b_pipeline.night import Night
from b2b_pipeline.reporting.dbt_docs import build_dbt_docs, dbt_docs_page
from b2b_pipeline.reporting.report_data import published_settings
from b2b_pipeline.reporting.sales_report import build_report
from b2b_pipeline.sources.registry import ApiConnection, extract_api
from b2b_pipeline.transform.manifest import dbt_manifest_path
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)


def extract(dsn: str, night: Night, system: str, connection: ApiConnection | None = None) -> dict[str, Any]:
    """Land tonight's records of one source system (crm, billing): the new files of the drop, or,
    with an API `connection`, the source's changes since its cursor, and the drop's files of the
    entities no API serves (`ALWAYS_FROM_FILES`: billing's fx_rates) when the drop has them. A
    summary for XCom and logs, without any credential."""
    if connection is None:
        report = load_drop(dsn, night.source_dir, systems=(system,))
        return {"system": system, "source": "files", **_files_summary(report)}
    summary: dict[str, Any] = {"system": system, **extract_api(dsn, connection)}
    reference = ALWAYS_FROM_FILES.get(system, ())
    if reference and Path(night.source_dir).is_dir():
        report = load_drop(dsn, night.source_dir, systems=(system,), entities=reference)
        summary["files"] = {"entities": list(reference), **_files_summary(report)}
    elif reference:
        log.info("%s: no drop at %s: no %s files tonight", system, night.source_dir, ", ".join(reference))
    return summary


def _files_summary(report: LoadReport) -> dict[str, Any]:
    return {
        "batch_id": report.batch_id,
        "files_loaded": report.count("loaded"),
        "files_skipped": report.count("skipped"),
        "files_refused": report.count("refused"),
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "refusals": [f"{f.file}: {f.reason}" for f in report.refusals],
    }


HEADLINE_SQL = """
with perf as (
    select deals_won, deals_lost, win_rate, won_amount, avg_deal_size, avg_cycle_days
    from {marts}.sales_performance_monthly where month = date_trunc('month', %(as_of)s::date)::date
), rev as (
    select revenue, new_customer_revenue_share, paying_customers
    from {marts}.revenue_monthly where month = date_trunc('month', %(as_of)s::date)::date
), ret as (
    select customers_end, retention_rate, churn_rate
    from {marts}.retention_monthly where month = date_trunc('month', %(as_of)s::date)::date
), rep as (
    select repeat_purchase_rate
    from {marts}.repeat_purchase_monthly where month = date_trunc('month', %(as_of)s::date)::date
), val as (
    select count(*) as existing_customers, sum(potential_contract_value) as potential_value
    from {marts}.customer_value
)
select * from perf full join rev on true full join ret on true full join rep on true full join val on true
"""


def headline_metrics(dsn: str, as_of: date, schema: str = "marts") -> dict[str, Any]:
    """The night's headline numbers (the as-of month so far) from the marts in `schema`.

    Counts are ints; every `numeric` (money, ratios, days) is its exact decimal text, e.g.
    `"100000000000000000000000000000.00"`, never a float: the result is the DAG's `summary` task
    value, and Airflow's XCom serialiser turns a Decimal with a fractional part into a float
    (`airflow.sdk.serde.serializers.bignum`), which would print float noise. `Decimal(text)` reads
    one back exactly; None stays None (nothing that month). Also `reporting_currency` and
    `reporting_timezone`, the settings the marts were built with (marts.reporting_settings; the
    defaults for marts published before it existed).
    """
    with connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(HEADLINE_SQL.replace("{marts}", schema), {"as_of": as_of}).fetchone() or {}
        settings = published_settings(cur, schema)
    return {
        **{k: (f"{v:f}" if isinstance(v, Decimal) else v) for k, v in row.items()},
        "reporting_currency": settings.currency,
        "reporting_timezone": settings.timezone,
    }


def publish_report(dsn: str, as_of: date) -> str | None:
    """Build the night's HTML report, and the dbt docs when missing or older than the project's manifest.

    The marts are published by now: a report that cannot be built is logged, never a failed night.
    """
    home = b2b_home()
    docs = dbt_docs_page(home)
    manifest = dbt_manifest_path()
    try:
        if not docs.exists() or (manifest.exists() and manifest.stat().st_mtime > docs.stat().st_mtime):
            build_dbt_docs(dsn, home, as_of=as_of)
    except Exception:
        log.exception("the dbt docs could not be built; the report links to the last ones built")
    try:
        return str(build_report(dsn, as_of, home))
    except Exception:
        log.exception("the nightly report could not be built")
        return None
