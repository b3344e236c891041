"""Small published marts written by SQL (no dbt): the columns of docs/metrics.md and the extra marts' YAML.

`create_marts()` makes the schema and empty tables; `fill_marts()` inserts a few deterministic months
ending with the as-of month, with one early month where nothing closed (NULL ratios), and existing
customers whose names need escaping. `write_gate()` writes a night's `gate.json` and `quality.html`.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from b2b_pipeline.stages import cycle_stage_keys

STAGES = cycle_stage_keys()  # lead .. post_sale, as the dbt seed canonical_stages.csv has them

TABLES: dict[str, str] = {
    "sales_funnel": "cohort_month date, stage_key text, stage_order integer, deals_reached bigint,"
    " deals_reached_next bigint, conversion_to_next numeric",
    "sales_performance_monthly": "month date, deals_won bigint, deals_lost bigint, win_rate numeric,"
    " won_amount numeric, avg_deal_size numeric, avg_cycle_days numeric, median_cycle_days numeric",
    "revenue_monthly": "month date, revenue numeric, revenue_new_customers numeric,"
    " new_customer_revenue_share numeric, paying_customers bigint",
    "retention_monthly": "month date, customers_start bigint, customers_end bigint, customers_new bigint,"
    " customers_churned bigint, retention_rate numeric, churn_rate numeric",
    "repeat_purchase_monthly": "month date, customers_with_purchase bigint, customers_with_repeat_purchase bigint,"
    " repeat_purchase_rate numeric",
    "customer_value": "account_key text, account_name text, weighted_open_pipeline numeric, active_mrr numeric,"
    " potential_contract_value numeric, as_of_date date",
    "sales_rep_performance_monthly": "month date, sales_rep_key text, sales_rep_name text, team text,"
    " deals_won bigint, deals_lost bigint, win_rate numeric, won_amount numeric, avg_cycle_days numeric",
    "stage_durations_monthly": "month date, stage_key text, stage_order integer, stage_entries bigint,"
    " completed_stays bigint, open_stays bigint, avg_days_in_stage numeric, median_days_in_stage numeric",
}

CUSTOMERS = 25
ESCAPE_ME = 'ООО «Ромашка» <b>&amp; "Co"'


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def create_marts(conn: psycopg.Connection, schema: str = "marts", tables: dict[str, str] | None = None) -> None:
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    for name, columns in (tables or TABLES).items():
        conn.execute(sql.SQL("create table {} (" + columns + ")").format(sql.Identifier(schema, name)))


def _insert(conn: psycopg.Connection, schema: str, table: str, rows: list[tuple[object, ...]]) -> None:
    if not rows:
        return
    marks = sql.SQL(", ").join(sql.Placeholder() * len(rows[0]))
    query = sql.SQL("insert into {} values ({})").format(sql.Identifier(schema, table), marks)
    with conn.cursor() as cur:
        cur.executemany(query, rows)


def month_list(as_of: date, months: int) -> list[date]:
    last = as_of.replace(day=1)
    return [add_months(last, i - months + 1) for i in range(months)]


def fill_marts(conn: psycopg.Connection, as_of: date, months: int = 8, schema: str = "marts") -> dict[str, int]:
    """Insert `months` months through the as-of month; the number of rows per table."""
    series = month_list(as_of, months)
    counts: dict[str, int] = {}

    funnel = []
    for i, cohort in enumerate(series):
        reached = [max(0, 100 + 5 * i - 15 * k - (k * i)) for k in range(7)]
        for k, stage in enumerate(STAGES):
            nxt = reached[k + 1] if k < 6 else None
            conv = None if nxt is None or reached[k] == 0 else nxt / reached[k]
            funnel.append((cohort, stage, k + 1, reached[k], nxt, conv))
    _insert(conn, schema, "sales_funnel", funnel)
    counts["sales_funnel"] = len(funnel)

    perf = []
    for i, month in enumerate(series):
        if i == 0:  # nothing closed: NULL ratios
            perf.append((month, 0, 0, None, 0, None, None, None))
            continue
        won, lost = 10 + i, 14
        amount = won * (250_000 + 10_000 * i)
        perf.append((month, won, lost, won / (won + lost), amount, amount / won, 60 + i, 55 + i))
    _insert(conn, schema, "sales_performance_monthly", perf)

    revenue = []
    for i, month in enumerate(series):
        total = 1_000_000 + 100_000 * i
        new = 80_000 + 5_000 * i
        revenue.append((month, total, new, new / total, 40 + i))
    _insert(conn, schema, "revenue_monthly", revenue)

    retention = []
    end = 0
    for i, month in enumerate(series):
        start = end
        churned = 0 if start == 0 else 1 + i % 3
        new = 12 + i
        end = start - churned + new
        rate = None if start == 0 else (start - churned) / start
        churn = None if start == 0 else churned / start
        retention.append((month, start, end, new, churned, rate, churn))
    _insert(conn, schema, "retention_monthly", retention)

    repeat = []
    for i, month in enumerate(series):
        buyers, repeaters = 30 + 4 * i, 10 + 2 * i
        repeat.append((month, buyers, repeaters, repeaters / buyers))
    _insert(conn, schema, "repeat_purchase_monthly", repeat)

    customers = []
    for n in range(CUSTOMERS):
        name = ESCAPE_ME if n == 0 else f"Customer {n:02d}"
        pipeline = 100_000.0 * (n % 4)
        mrr = 50_000.0 - 1_000.0 * n
        customers.append((f"files:crm:{1000 + n}", name, pipeline, mrr, pipeline + 12 * mrr, as_of))
    _insert(conn, schema, "customer_value", customers)

    reps = []
    for i, month in enumerate(series):
        for r, (key, name, team) in enumerate(
            (("rep:1", "Анна Петрова", "Enterprise"), ("rep:2", "Ivan Smirnov", "SMB"), (None, None, None))
        ):
            won, lost = 2 + r + i % 2, 3
            reps.append((month, key, name, team, won, lost, won / (won + lost), won * 200_000.0, 40.0 + r))
    _insert(conn, schema, "sales_rep_performance_monthly", reps)

    durations = []
    for month in series:
        for k, stage in enumerate((*STAGES, "lost")):
            order = k + 1 if stage != "lost" else None
            stays = 20 - 2 * k if stage != "post_sale" else 0
            avg = 5.0 + 2 * k if stays else None
            durations.append((month, stage, order, 25 - 2 * k, stays, 5, avg, avg))
    _insert(conn, schema, "stage_durations_monthly", durations)

    counts.update({"months": months, "customers": CUSTOMERS})
    return counts


def write_gate(home: Path, as_of: date, passed: bool = True, warnings: tuple[str, ...] = ()) -> Path:
    folder = home / "reports" / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "as_of_date": as_of.isoformat(),
        "passed": passed,
        "counts": {
            "checks": 40,
            "passed": 40 - len(warnings) - (0 if passed else 1),
            "warned": len(warnings),
            "blocked": 0 if passed else 1,
            "skipped": 0,
        },
        "blocking": [] if passed else ["marts_not_empty"],
        "warnings": list(warnings),
        "checks": [],
    }
    (folder / "gate.json").write_text(json.dumps(doc), encoding="utf-8")
    (folder / "quality.html").write_text("<!DOCTYPE html><title>quality</title><p>gate</p>", encoding="utf-8")
    return folder / "gate.json"
