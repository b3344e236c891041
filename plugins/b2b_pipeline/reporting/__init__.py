"""The nightly sales report (HTML from the published marts), the dbt docs, and the server for both.

The page is the Jinja2 template `templates/report.html.j2` (shipped as package data). Importing this
package is cheap: matplotlib, Jinja2, dbt and Airflow are imported only when a report, the docs or
the app is built.
"""

from b2b_pipeline.reporting.dbt_docs import DocsCoverage, build_dbt_docs, dbt_docs_dir, dbt_docs_page, docs_coverage
from b2b_pipeline.reporting.report_data import MartsSnapshot, latest_published_as_of, read_marts
from b2b_pipeline.reporting.sales_report import (
    ReportError,
    build_report,
    latest_dir,
    read_gate,
    report_command,
    report_page,
)

__all__ = [
    "DocsCoverage",
    "MartsSnapshot",
    "ReportError",
    "build_dbt_docs",
    "build_report",
    "dbt_docs_dir",
    "dbt_docs_page",
    "docs_coverage",
    "latest_dir",
    "latest_published_as_of",
    "read_gate",
    "read_marts",
    "report_command",
    "report_page",
]
