"""What the nightly report reads: the published marts (schema `marts`), and the published core star
(schema `core`) for one thing only, in one snapshot.

Every query names its columns as docs/metrics.md (and the extra marts' YAML) define them, so columns
added to a mart later change nothing here. A mart that is not published (a new warehouse, a
schema without the extra marts) reads as empty and is listed in `MartsSnapshot.missing`.

The one thing read from `core`: when the as-of date is not its month's last day, the marts' last
month is month to date, and the marts hold no figure to compare it with like for like (the previous
month is whole). `MartsSnapshot.same_days` holds the previous month's figures through the same day of
the month, computed from `core.fct_deals`, `core.fct_invoices` and `core.fct_subscriptions` with the
marts' own definitions (docs/metrics.md), with what is known as of the published as-of date (a deal
closed late in October but recorded in November counts in October's days).

Module names in this package are deliberately distinctive and imports absolute: in the Docker
image Airflow's plugin loader imports every `.py` file under `plugins/` as a top-level module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from b2b_pipeline.config import REPORTING_CURRENCY
from b2b_pipeline.publish import SETTINGS_MART
from b2b_pipeline.warehouse import connect

PUBLISHED_MARTS_SCHEMA = "marts"
PUBLISHED_CORE_SCHEMA = "core"  # published with the marts, in the same transaction (publish.py)
# marts published before that mart existed: columns that, when a mart has one, name the reporting
# currency; without one, the settings' defaults (the only ones such marts were built with)
CURRENCY_COLUMNS = ("reporting_currency", "currency")
FUNNEL_COHORTS = 6
TOP_CUSTOMERS = 20
REP_MONTHS = 3
STAGE_MONTHS = 6

Row = dict[str, Any]


@dataclass(frozen=True)
class ReportingSettings:
    """The settings the published marts were built with (marts.reporting_settings)."""

    currency: str = REPORTING_CURRENCY
    fx_base_currency: str = REPORTING_CURRENCY
    timezone: str = "UTC"
    sales_pipelines: str = "all"
    published: bool = False  # read from marts.reporting_settings (else the defaults, or a currency column)


@dataclass
class MartsSnapshot:
    """The published marts as the report needs them: `numeric` values (money, ratios) as Decimal, exact;
    counts as int; months as date. Only the charts turn numbers into floats, to plot them."""

    schema: str
    published_as_of: date | None  # `as_of_date` of marts.customer_value; None when it has no row
    currency: str
    settings: ReportingSettings = field(default_factory=ReportingSettings)
    funnel: list[Row] = field(default_factory=list)  # the last FUNNEL_COHORTS cohort months, all stages
    performance: list[Row] = field(default_factory=list)  # sales_performance_monthly, by month
    revenue: list[Row] = field(default_factory=list)
    retention: list[Row] = field(default_factory=list)
    repeat: list[Row] = field(default_factory=list)
    top_customers: list[Row] = field(default_factory=list)  # by potential_contract_value, TOP_CUSTOMERS
    customers: Row = field(default_factory=dict)  # count and total potential value of all existing customers
    reps: list[Row] = field(default_factory=list)  # the last REP_MONTHS months, per rep (extra mart)
    reps_months: tuple[date, date] | None = None  # (first, last) month the per-rep figures cover
    stage_durations: list[Row] = field(default_factory=list)  # the last STAGE_MONTHS months (extra mart)
    stage_months: tuple[date, date] | None = None
    missing: list[str] = field(default_factory=list)  # marts that are not published
    # the previous month through the as-of date's day (see the module's doc); None when the as-of month is
    # whole (compare with the marts' previous month) or the core tables are not published
    same_days: SameDays | None = None


@dataclass(frozen=True)
class SameDays:
    """The previous month's figures from its first day through `end` (the as-of date's day of the month, or
    the month's last day when it is shorter), by the marts' definitions, with what is known as of the
    published as-of date."""

    start: date
    end: date
    values: Row  # the mart columns of `SAME_DAYS_COLUMNS`


def _rows(cur: psycopg.Cursor[Row], query: sql.Composable, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    """The rows as read: a `numeric` stays a Decimal (exact money; only the charts convert to float)."""
    return [dict(row) for row in cur.execute(query, params).fetchall()]


def _published(cur: psycopg.Cursor[Row], schema: str) -> set[str]:
    found = cur.execute(
        "select table_name from information_schema.tables where table_schema = %s", (schema,)
    ).fetchall()
    return {row["table_name"] for row in found}


def latest_published_as_of(dsn: str, schema: str = PUBLISHED_MARTS_SCHEMA) -> date | None:
    """The as-of date of the published marts (max `as_of_date` of customer_value), or None."""
    with connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        if "customer_value" not in _published(cur, schema):
            return None
        row = cur.execute(
            sql.SQL("select max(as_of_date) as as_of from {}.customer_value").format(sql.Identifier(schema))
        ).fetchone()
    return row["as_of"] if row else None


def published_settings(cur: psycopg.Cursor[Row], schema: str, tables: set[str] | None = None) -> ReportingSettings:
    """The settings of the marts in `schema` (`tables`: its tables, when known): their
    marts.reporting_settings row, else (marts published before it existed) the defaults, with the
    currency of a currency column if a mart has one. `cur` returns rows as dicts."""
    tables = _published(cur, schema) if tables is None else tables
    if SETTINGS_MART in tables:
        row = cur.execute(
            sql.SQL(
                "select reporting_currency, fx_base_currency, reporting_timezone, sales_pipelines"
                " from {}.reporting_settings limit 1"
            ).format(sql.Identifier(schema))
        ).fetchone()
        if row:
            return ReportingSettings(
                currency=row["reporting_currency"],
                fx_base_currency=row["fx_base_currency"],
                timezone=row["reporting_timezone"],
                sales_pipelines=row["sales_pipelines"],
                published=True,
            )
    currency = _currency_column(cur, schema, tables)
    return ReportingSettings(currency=currency, fx_base_currency=currency)  # no base known: none shown


def _currency_column(cur: psycopg.Cursor[Row], schema: str, tables: set[str]) -> str:
    found = cur.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = %s and column_name = any(%s) order by table_name, column_name",
        (schema, list(CURRENCY_COLUMNS)),
    ).fetchall()
    for row in found:
        if row["table_name"] not in tables:
            continue
        value = cur.execute(
            sql.SQL("select {col} as c from {tbl} where {col} is not null limit 1").format(
                col=sql.Identifier(row["column_name"]), tbl=sql.Identifier(schema, row["table_name"])
            )
        ).fetchone()
        if value and value["c"]:
            return str(value["c"]).strip().upper()
    return REPORTING_CURRENCY


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class _MartRead:
    """How the list `MartsSnapshot.<attribute>` is read: `query` on `mart` (written `{m}` in it), with
    `params` (taken from the snapshot read so far) for its `%s`. A mart not published leaves it empty."""

    attribute: str
    mart: str
    query: str
    params: Callable[[MartsSnapshot], Sequence[Any]] = lambda snap: ()


# In the order of `MartsSnapshot.missing`. They run after the customers' summary (`_CUSTOMERS`),
# whose as-of date sets the months the per-rep and time-in-stage figures cover.
_READS: tuple[_MartRead, ...] = (
    _MartRead(
        "funnel",
        "sales_funnel",
        "with cohorts as (select distinct cohort_month from {m} order by cohort_month desc limit %s)"
        " select cohort_month, stage_key, stage_order, deals_reached, deals_reached_next,"
        " conversion_to_next from {m} where cohort_month in (select cohort_month from cohorts)"
        " order by cohort_month, stage_order",
        lambda snap: (FUNNEL_COHORTS,),
    ),
    _MartRead(
        "performance",
        "sales_performance_monthly",
        "select month, deals_won, deals_lost, win_rate, won_amount, avg_deal_size, avg_cycle_days,"
        " median_cycle_days from {m} order by month",
    ),
    _MartRead(
        "revenue",
        "revenue_monthly",
        "select month, revenue, revenue_new_customers, new_customer_revenue_share,"
        " paying_customers from {m} order by month",
    ),
    _MartRead(
        "retention",
        "retention_monthly",
        "select month, customers_start, customers_end, customers_new, customers_churned,"
        " retention_rate, churn_rate from {m} order by month",
    ),
    _MartRead(
        "repeat",
        "repeat_purchase_monthly",
        "select month, customers_with_purchase, customers_with_repeat_purchase,"
        " repeat_purchase_rate from {m} order by month",
    ),
    _MartRead(
        "top_customers",
        "customer_value",
        "select account_key, account_name, potential_contract_value, weighted_open_pipeline,"
        " active_mrr from {m} order by potential_contract_value desc, account_name, account_key"
        " limit %s",
        lambda snap: (TOP_CUSTOMERS,),
    ),
    _MartRead(
        "reps",
        "sales_rep_performance_monthly",
        "select sales_rep_key, max(sales_rep_name) as sales_rep_name, max(team) as team,"
        " sum(deals_won) as deals_won, sum(deals_lost) as deals_lost,"
        " sum(deals_won)::numeric / nullif(sum(deals_won + deals_lost), 0) as win_rate,"
        " coalesce(sum(won_amount), 0) as won_amount,"
        " sum(avg_cycle_days * deals_won) / nullif(sum(deals_won)"
        "   filter (where avg_cycle_days is not null), 0) as avg_cycle_days"
        " from {m} where month between %s and %s"
        " group by sales_rep_key order by won_amount desc, deals_won desc, sales_rep_name",
        lambda snap: snap.reps_months,
    ),
    _MartRead(
        "stage_durations",
        "stage_durations_monthly",
        "select stage_key, min(stage_order) as stage_order, sum(stage_entries) as stage_entries,"
        " sum(completed_stays) as completed_stays,"
        " sum(avg_days_in_stage * completed_stays) / nullif(sum(completed_stays)"
        "   filter (where avg_days_in_stage is not null), 0) as avg_days_in_stage"
        " from {m} where month between %s and %s and stage_order is not null"
        " group by stage_key order by min(stage_order)",
        lambda snap: snap.stage_months,
    ),
)
# `MartsSnapshot.customers`: one row, all existing customers; its `as_of` is the published as-of date
_CUSTOMERS = (
    "select count(*) as customers, coalesce(sum(potential_contract_value), 0) as potential_value,"
    " coalesce(sum(active_mrr), 0) as active_mrr,"
    " coalesce(sum(weighted_open_pipeline), 0) as weighted_open_pipeline,"
    " max(as_of_date) as as_of from {m}"
)


# The previous month through the same day, with the marts' definitions (docs/metrics.md) and the mart
# SQL's own shape (dbt_project/models/marts/*.sql): (core table, query on it as `{t}`), with `%(start)s` ..
# `%(end)s` the days counted and `%(before)s` the last day of the month before them; `{sales}` keeps the deals
# of the pipelines that count (`and is_sales_pipeline`; nothing for a core published before that column).
_SAME_DAYS: tuple[tuple[str, str], ...] = (
    (  # sales_performance_monthly: the deals won in the days
        "fct_deals",
        "select count(*) as deals_won, coalesce(sum(amount_reporting), 0) as won_amount,"
        " sum(amount_reporting) / nullif(count(*), 0) as avg_deal_size,"
        " avg(cycle_days) as avg_cycle_days,"
        " (percentile_cont(0.5) within group (order by cycle_days))::numeric as median_cycle_days"
        " from {t} where is_won and close_date between %(start)s and %(end)s {sales}",
    ),
    (  # revenue_monthly: paid in the days; new = the customer's first paid month is this month
        "fct_invoices",
        "with paid as (select account_key, paid_date, paid_month, amount_paid_reporting from {t} where is_paid),"
        " firsts as (select account_key, min(paid_month) as first_paid_month from paid"
        "   where account_key is not null group by account_key)"
        " select coalesce(sum(paid.amount_paid_reporting), 0) as revenue,"
        " coalesce(sum(paid.amount_paid_reporting) filter (where firsts.first_paid_month = paid.paid_month), 0)"
        "   as revenue_new_customers,"
        " coalesce(sum(paid.amount_paid_reporting) filter (where firsts.first_paid_month = paid.paid_month), 0)"
        "   / nullif(sum(paid.amount_paid_reporting), 0) as new_customer_revenue_share"
        " from paid left join firsts on paid.account_key = firsts.account_key"
        " where paid.paid_date between %(start)s and %(end)s",
    ),
    (  # repeat_purchase_monthly: customers with one, and two or more, won deals closed by the end
        "fct_deals",
        "with buyers as (select account_key, count(*) as purchases from {t}"
        "   where is_won and account_key is not null and close_date <= %(end)s {sales} group by account_key)"
        " select count(*) as customers_with_purchase,"
        " count(*) filter (where purchases >= 2) as customers_with_repeat_purchase,"
        " (count(*) filter (where purchases >= 2))::numeric / nullif(count(*), 0) as repeat_purchase_rate"
        " from buyers",
    ),
    (  # retention_monthly: S = active on `before`, E = active on `end`
        "fct_subscriptions",
        "with customers as (select account_key,"
        "   bool_or(start_date <= %(before)s and (cancel_date is null or cancel_date > %(before)s)) as in_s,"
        "   bool_or(start_date <= %(end)s and (cancel_date is null or cancel_date > %(end)s)) as in_e"
        "   from {t} where is_counted and account_key is not null group by account_key)"
        " select count(*) filter (where in_s) as customers_start, count(*) filter (where in_e) as customers_end,"
        " count(*) filter (where in_e and not in_s) as customers_new,"
        " count(*) filter (where in_s and not in_e) as customers_churned,"
        " (count(*) filter (where in_s and in_e))::numeric / nullif(count(*) filter (where in_s), 0)"
        "   as retention_rate,"
        " (count(*) filter (where in_s and not in_e))::numeric / nullif(count(*) filter (where in_s), 0)"
        "   as churn_rate"
        " from customers",
    ),
)


def month_end(month: date) -> date:
    return add_months(month, 1) - timedelta(days=1)


def is_partial_month(as_of: date) -> bool:
    """Whether the as-of month is month to date: the as-of date is not its month's last day."""
    return as_of != month_end(month_start(as_of))


def same_days_window(as_of: date) -> tuple[date, date, date]:
    """(start, end, before) of the previous month's same days: its first day, the as-of date's day in it
    (its last day when it is shorter), and the last day of the month before it."""
    start = add_months(month_start(as_of), -1)
    end = min(start + timedelta(days=as_of.day - 1), month_end(start))
    return start, end, start - timedelta(days=1)


def days_figures(cur: psycopg.Cursor[Row], core: str, start: date, end: date) -> Row:
    """The monthly marts' figures of the days `start` .. `end` (within one month) from the core tables in
    schema `core`, by the marts' definitions, with what the core knows now (not as it stood on `end`). Over a
    whole month they
    are the marts' row of that month (tests/reporting/test_same_days.py checks it on a real night)."""
    params = {"start": start, "end": end, "before": start - timedelta(days=1)}
    has_flag = cur.execute(
        "select 1 from information_schema.columns"
        " where table_schema = %s and table_name = 'fct_deals' and column_name = 'is_sales_pipeline'",
        (core,),
    ).fetchone()
    sales = sql.SQL("and is_sales_pipeline" if has_flag else "")
    values: Row = {}
    for table, text in _SAME_DAYS:
        query = sql.SQL(text).format(t=sql.Identifier(core, table), sales=sales)
        values.update(_rows(cur, query, params)[0])
    return values


def _same_days(cur: psycopg.Cursor[Row], core: str, as_of: date) -> SameDays | None:
    """The previous month through the as-of date's day, from the published core (None when a table is missing)."""
    tables = _published(cur, core)
    if any(table not in tables for table, _ in _SAME_DAYS):
        return None
    start, end, _before = same_days_window(as_of)
    return SameDays(start=start, end=end, values=days_figures(cur, core, start, end))


def read_marts(
    dsn: str,
    as_of: date | None = None,
    schema: str = PUBLISHED_MARTS_SCHEMA,
    currency: str | None = None,
    core_schema: str = PUBLISHED_CORE_SCHEMA,
) -> MartsSnapshot:
    """Read what the report shows from the marts in `schema`, in one read-only snapshot.

    The per-rep and time-in-stage figures cover the last months up to the published as-of month
    (`as_of` when the marts name none). When the published as-of date is not its month's last day, also
    the previous month's same days from the core tables in `core_schema` (`MartsSnapshot.same_days`).
    """
    with connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            tables = _published(cur, schema)

            def query(text: str, mart: str) -> sql.Composable:
                return sql.SQL(text).format(m=sql.Identifier(schema, mart))

            settings = published_settings(cur, schema, tables)
            snap = MartsSnapshot(
                schema=schema,
                published_as_of=None,
                currency=settings.currency if currency is None else currency or REPORTING_CURRENCY,
                settings=settings,
                missing=[read.mart for read in _READS if read.mart not in tables],
            )
            if "customer_value" in tables:
                snap.customers = _rows(cur, query(_CUSTOMERS, "customer_value"))[0]
                snap.published_as_of = snap.customers.pop("as_of")
            anchor = month_start(snap.published_as_of or as_of or date.today())
            snap.reps_months = (add_months(anchor, 1 - REP_MONTHS), anchor)
            snap.stage_months = (add_months(anchor, 1 - STAGE_MONTHS), anchor)
            for read in _READS:
                if read.mart in tables:
                    setattr(snap, read.attribute, _rows(cur, query(read.query, read.mart), read.params(snap)))
            if snap.published_as_of is not None and is_partial_month(snap.published_as_of):
                snap.same_days = _same_days(cur, core_schema, snap.published_as_of)
    return snap
