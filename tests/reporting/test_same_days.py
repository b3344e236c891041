"""The previous month's same days are computed from the core star as the marts compute a month: over every
whole month of a real night (the session's reference night, built by `b2b run`), the report's core
queries give exactly the marts' published row. So the like-for-like figure of a month to date is the
figure the marts would have shown with that day as the as-of date, not a second definition."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.reporting.report_data import days_figures, month_end
from nights import ReferenceNight  # tests/nights.py

# mart -> the columns the core queries give for it
COLUMNS = {
    "sales_performance_monthly": (
        "deals_won",
        "won_amount",
        "avg_deal_size",
        "avg_cycle_days",
        "median_cycle_days",
    ),
    "revenue_monthly": ("revenue", "revenue_new_customers", "new_customer_revenue_share"),
    "repeat_purchase_monthly": ("customers_with_purchase", "customers_with_repeat_purchase", "repeat_purchase_rate"),
    "retention_monthly": (
        "customers_start",
        "customers_end",
        "customers_new",
        "customers_churned",
        "retention_rate",
        "churn_rate",
    ),
}


@pytest.mark.integration
@pytest.mark.slow
def test_core_figures_of_a_whole_month_are_the_marts_row(reference_night: ReferenceNight) -> None:
    compared = 0
    with psycopg.connect(reference_night.dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        for mart, columns in COLUMNS.items():
            query = sql.SQL("select month, {} from {} order by month").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("marts", mart)
            )
            rows = cur.execute(query).fetchall()
            assert len(rows) >= 6, mart
            for row in rows:
                figures = days_figures(cur, "core", row["month"], month_end(row["month"]))
                assert {c: figures[c] for c in columns} == {c: row[c] for c in columns}, (mart, row["month"])
                compared += 1
    assert compared >= 24
