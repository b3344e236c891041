"""The steps of one night, as plain functions: the DAG's tasks and the CLI call these and nothing else.

A night is named by its as-of date D: it counts everything before D + 1 day
00:00 UTC. The scheduled run at 02:00 UTC of day D + 1 covers the data interval
[D 02:00, D+1 02:00) and so gets D; a manual run names D in its conf.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.publish import candidate
from b2b_pipeline.warehouse import connect

SOURCE_DIR_ENV = "B2B_SOURCE_DIR"
log = logging.getLogger(__name__)


class NightConfigError(ValueError):
    """The night cannot be named: no as-of date or no drop folder."""


@dataclass(frozen=True)
class Night:
    as_of: date
    source_dir: Path

    def as_dict(self) -> dict[str, str]:
        return {"as_of_date": self.as_of.isoformat(), "source_dir": str(self.source_dir)}

    @classmethod
    def from_dict(cls, value: Mapping[str, str]) -> Night:
        return cls(as_of=date.fromisoformat(value["as_of_date"]), source_dir=Path(value["source_dir"]))


def resolve_night(conf: Mapping[str, Any] | None, data_interval_end: datetime | None) -> Night:
    """The night of a DAG run: `as_of_date` and `source_dir` from its conf, else from its data
    interval and `B2B_SOURCE_DIR`."""
    conf = conf or {}
    if conf.get("as_of_date"):
        try:
            as_of = date.fromisoformat(str(conf["as_of_date"]))
        except ValueError as exc:
            raise NightConfigError(f"as_of_date {conf['as_of_date']!r} is not a date YYYY-MM-DD") from exc
    elif data_interval_end is not None:
        as_of = (data_interval_end - timedelta(days=1)).date()
    else:
        raise NightConfigError("no as_of_date in the run's conf and no data interval")
    source = conf.get("source_dir") or os.environ.get(SOURCE_DIR_ENV)
    if not source:
        raise NightConfigError(f"no source_dir in the run's conf and {SOURCE_DIR_ENV} is not set")
    source_dir = Path(str(source)).expanduser().resolve()
    if not source_dir.is_dir():
        raise NightConfigError(f"the drop folder {source_dir} does not exist")
    return Night(as_of=as_of, source_dir=source_dir)


def extract(dsn: str, night: Night, system: str) -> dict[str, Any]:
    """Load the new files of one source system of the drop; a summary for XCom and logs."""
    report = load_drop(dsn, night.source_dir, systems=(system,))
    return {
        "system": system,
        "batch_id": report.batch_id,
        "files_loaded": report.count("loaded"),
        "files_skipped": report.count("skipped"),
        "files_refused": report.count("refused"),
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "refusals": [f"{f.file}: {f.reason}" for f in report.refusals],
    }


def dbt_vars(as_of: date | str) -> dict[str, str]:
    """The dbt vars of a night: its as-of date, and the candidate schemas to build into."""
    return {
        "as_of_date": as_of if isinstance(as_of, str) else as_of.isoformat(),
        "core_schema": candidate("core"),
        "marts_schema": candidate("marts"),
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
    one back exactly; None stays None (nothing that month).
    """
    with connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(HEADLINE_SQL.replace("{marts}", schema), {"as_of": as_of}).fetchone() or {}
    return {k: (f"{v:f}" if isinstance(v, Decimal) else v) for k, v in row.items()}


def publish_report(dsn: str, as_of: date) -> str | None:
    """Build the night's HTML report, and the dbt docs when missing or older than the project's manifest.

    The marts are published by now: a report that cannot be built is logged, never a failed night.
    """
    from b2b_pipeline.config import b2b_home
    from b2b_pipeline.orchestration.project import dbt_manifest_path
    from b2b_pipeline.reporting.dbt_docs import build_dbt_docs
    from b2b_pipeline.reporting.sales_report import build_report

    home = b2b_home()
    docs = home / "reports" / "dbt_docs" / "static_index.html"
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
