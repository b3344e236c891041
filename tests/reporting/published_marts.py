"""Small published marts written by SQL (no dbt): the columns of docs/metrics.md and the extra marts' YAML.

`create_marts()` makes the schema and empty tables; `fill_marts()` inserts a few deterministic months
ending with the as-of month, with one early month where nothing closed (NULL ratios), and existing
customers whose names need escaping. `create_core()` and `fill_core()` write the few columns of the
core star the report reads for the previous month's same days, with rows whose figures are worked out
by hand in `SAME_DAYS` (for an as-of date of the 25th). `write_gate()` writes a night's `gate.json` and
`quality.html`.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
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

# the published marts with marts.reporting_settings (marts published before it existed have none)
TABLES_WITH_SETTINGS: dict[str, str] = {
    **TABLES,
    "reporting_settings": "as_of_date date, reporting_currency text, fx_base_currency text, reporting_timezone text,"
    " sales_pipelines text",
}

# the core columns the report reads (the rest of the core star is not needed)
CORE_TABLES: dict[str, str] = {
    "fct_deals": "account_key text, is_won boolean, close_date date, amount_reporting numeric, cycle_days integer",
    "fct_invoices": "account_key text, is_paid boolean, paid_date date, paid_month date, amount_paid_reporting numeric",
    "fct_subscriptions": "account_key text, is_counted boolean, start_date date, cancel_date date",
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


def create_core(conn: psycopg.Connection, schema: str = "core") -> None:
    create_marts(conn, schema, CORE_TABLES)


# The previous month's 1st to 25th (the same days as an as-of date of the 25th), worked out by hand from
# `fill_core`'s rows: the figures the marts would show with the previous month's 25th as the as-of date.
SAME_DAYS = {
    "deals_won": 3,  # A on the 3rd and the 20th, the account-less deal on the 10th (B on the 28th is later)
    "won_amount": Decimal(600_000),
    "avg_deal_size": Decimal(200_000),
    "avg_cycle_days": Decimal(40),  # (30 + 50 + 40) / 3
    "median_cycle_days": Decimal(40),
    "revenue": Decimal(8_000),  # A 4,000 (paying since two months before), E 3,000 (new), no account 1,000
    "revenue_new_customers": Decimal(3_000),
    "new_customer_revenue_share": Decimal("0.375"),
    "customers_with_purchase": 2,  # A (twice) and C (once by the 25th; again on the 26th)
    "customers_with_repeat_purchase": 1,
    "repeat_purchase_rate": Decimal("0.5"),
    "customers_start": 4,  # A, B, C, H active on the last day of the month before
    "customers_end": 4,  # A, C, D, H active on the 25th
    "customers_new": 1,  # D
    "customers_churned": 1,  # B, cancelled on the 10th
    "retention_rate": Decimal("0.75"),
    "churn_rate": Decimal("0.25"),
}


def fill_core(conn: psycopg.Connection, as_of: date, schema: str = "core") -> None:
    """Core rows around the month before `as_of`'s (the as-of date must be a 25th or later)."""
    month = add_months(as_of.replace(day=1), -1)

    def day(n: int, months: int = 0) -> date:
        return add_months(month, months).replace(day=n)

    _insert(
        conn,
        schema,
        "fct_deals",
        [
            ("A", True, day(3), 100_000, 30),
            ("A", True, day(20), 300_000, 50),
            (None, True, day(10), 200_000, 40),
            ("B", True, day(28), 999_999, 99),  # after the same days
            ("C", True, day(15, -1), 50_000, 10),  # the month before: counts as C's purchase, not in the days
            ("C", True, day(26), 70_000, 20),  # after the same days
            ("D", False, day(5), 70_000, 5),  # lost
            ("A", True, day(2, 1), 10_000, 3),  # the as-of month
        ],
    )
    _insert(
        conn,
        schema,
        "fct_invoices",
        [
            ("A", True, day(10, -2), day(1, -2), 1_000),
            ("A", True, day(5), day(1), 4_000),
            ("E", True, day(7), day(1), 3_000),
            ("E", True, day(27), day(1), 5_000),  # after the same days
            ("F", True, day(28), day(1), 2_000),  # new, but after the same days
            (None, True, day(12), day(1), 1_000),
            ("G", False, None, None, 9_999),  # not paid
        ],
    )
    _insert(
        conn,
        schema,
        "fct_subscriptions",
        [
            ("A", True, day(1, -9), None),
            ("B", True, day(1, -8), day(10)),  # churns on the 10th
            ("C", True, day(1, -7), day(5, 1)),  # cancelled after the same days
            ("D", True, day(3), None),  # new
            ("E", True, day(1, -6), day(1) - timedelta(days=1)),  # cancelled on the month before's last day
            ("F", False, day(1, -9), None),  # trialing: not counted
            ("H", True, day(1, -5), None),
            ("H", True, day(1, -4), day(2)),  # H stays active through its other subscription
            (None, True, day(1, -9), None),  # no account: no customer
        ],
    )
