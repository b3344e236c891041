"""The report's headline tiles: the eight measures of docs/metrics.md, at a glance.

Each tile's value is a mart's value as published, never recomputed: the as-of month's row of the monthly
marts, the sum of `marts.customer_value`, and, for the overall lead conversion, the funnel's own counts
(`deals_reached` of `closing` over that of `lead`, over the cohorts the funnel chart shows).

A tile compares like with like. When the as-of month is whole (the as-of date is its last day), with the
previous month's row of the same mart. When it is month to date, with the previous month's same days
(`MartsSnapshot.same_days`, from the core tables with the marts' definitions), and the tile says so:
"Nov 2026 to date (1–25 Nov)" against "1–25 Oct". Without the core tables the month to date is shown
with no comparison rather than against a whole month.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from b2b_pipeline.page_style import exact, thousands
from b2b_pipeline.reporting.report_charts import short_number
from b2b_pipeline.reporting.report_data import (
    MartsSnapshot,
    Row,
    add_months,
    is_partial_month,
    month_start,
    same_days_window,
)

# the funnel's stages whose counts make the overall conversion: from the lead to the signed sale
CONVERSION_FROM, CONVERSION_TO = "lead", "closing"


@dataclass(frozen=True)
class Period:
    """The as-of month as the tiles show it, and what it is compared with."""

    as_of: date
    month: date
    partial: bool
    label: str  # "Nov 2026 to date (1–25 Nov)", or "Nov 2026"
    compare_label: str  # "1–25 Oct", or "Oct 2026"


def period_of(as_of: date) -> Period:
    month = month_start(as_of)
    previous = add_months(month, -1)
    if not is_partial_month(as_of):
        return Period(as_of, month, False, f"{month:%b %Y}", f"{previous:%b %Y}")
    _, end, _ = same_days_window(as_of)
    return Period(
        as_of,
        month,
        True,
        f"{month:%b %Y} to date (1–{as_of.day} {as_of:%b})",
        f"1–{end.day} {previous:%b}",
    )


@dataclass(frozen=True)
class Tile:
    name: str  # data-tile
    label: str
    value: Decimal | int | None  # the mart's value, exactly (data-value)
    text: str  # the value as shown
    period: str
    source: str  # where the value is read: mart.column
    note: str = ""
    compare_label: str = ""  # what the value is compared with ("1–25 Oct"); "" when with nothing
    compare_value: Decimal | int | None = None
    compare_text: str = ""  # the comparison as shown, or why there is none
    approx: str = ""  # a large amount's short form, beside the exact one
    partial: bool = False  # the value is of a month to date


# ------------------------------------------------------------------------------------ formats


def money(value: Any, currency: str, short: bool = False) -> str:
    """Money to the unit with thousands separators, from the exact value; `short`: 3 significant digits
    (8.73M, 1.00e+308)."""
    if value is None:
        return "–"
    return f"{short_number(exact(value)) if short else thousands(value)}\u00a0{currency}"


def approx_money(value: Any, currency: str) -> str:
    """A reading aid beside an amount of a million or more: its 3 significant digits ('8.73M RUB'); else ''."""
    return money(value, currency, short=True) if value is not None and abs(exact(value)) >= APPROX_FROM else ""


APPROX_FROM = 1_000_000


def percent(value: Any, decimals: int = 1) -> str:
    return "–" if value is None else f"{exact(value) * 100:,.{decimals}f}\u00a0%"


def days(value: Any) -> str:
    return "–" if value is None else f"{thousands(value)}\u00a0d"


def count(value: Any) -> str:
    return thousands(value)


# -------------------------------------------------------------------------------------- tiles


def _row(rows: list[Row], month: date) -> Row:
    return next((r for r in rows if r["month"] == month), {})


def lead_conversion(funnel: list[Row]) -> tuple[int, int, Decimal | None]:
    """(leads, reached closing, share) over the funnel rows given (the funnel's cohorts)."""
    leads = sum(int(r["deals_reached"] or 0) for r in funnel if r["stage_key"] == CONVERSION_FROM)
    closing = sum(int(r["deals_reached"] or 0) for r in funnel if r["stage_key"] == CONVERSION_TO)
    return leads, closing, (Decimal(closing) / Decimal(leads) if leads else None)


def tiles(snap: MartsSnapshot, as_of: date) -> list[Tile]:
    """The eight tiles, in the order of docs/metrics.md's measures, for the published as-of date `as_of`."""
    period = period_of(as_of)
    cur = snap.currency
    previous_month = add_months(period.month, -1)
    perf, revenue = _row(snap.performance, period.month), _row(snap.revenue, period.month)
    repeat, retention = _row(snap.repeat, period.month), _row(snap.retention, period.month)

    if not period.partial:
        earlier = {
            "performance": _row(snap.performance, previous_month),
            "revenue": _row(snap.revenue, previous_month),
            "repeat": _row(snap.repeat, previous_month),
            "retention": _row(snap.retention, previous_month),
        }
    elif snap.same_days is not None:
        same = snap.same_days.values
        earlier = {"performance": same, "revenue": same, "repeat": same, "retention": same}
    else:
        earlier = None

    def monthly(
        name: str,
        label: str,
        mart: str,
        rows: str,
        row: Row,
        column: str,
        show: Callable[[Any], str],
        note: str = "",
        approx: str = "",
    ) -> Tile:
        compare = None if earlier is None else earlier[rows].get(column)
        return Tile(
            name=name,
            label=label,
            value=row.get(column),
            text=show(row.get(column)),
            period=period.label,
            source=f"{mart}.{column}",
            note=note,
            compare_label=period.compare_label if earlier is not None else "",
            compare_value=compare,
            compare_text=(
                f"{period.compare_label}: {show(compare)}"
                if earlier is not None
                else "no like-for-like figure (core tables not published)"
                if row.get(column) is not None
                else ""
            ),
            approx=approx,
            partial=period.partial,
        )

    leads, closing, conversion = lead_conversion(snap.funnel)
    cohorts = sorted({r["cohort_month"] for r in snap.funnel})
    cohort_span = f"deals created {cohorts[0]:%b %Y} to {cohorts[-1]:%b %Y}" if cohorts else "no deals"
    customers = snap.customers
    return [
        Tile(
            name="lead_conversion",
            label="Lead conversion, lead to closing",
            value=conversion,
            text=percent(conversion),
            period=cohort_span,
            source="sales_funnel.deals_reached",
            note=f"{count(closing)} of {count(leads)} leads reached closing",
        ),
        monthly(
            "sales_cycle",
            "Sales cycle of won deals, average",
            "sales_performance_monthly",
            "performance",
            perf,
            "avg_cycle_days",
            days,
            note=f"median {days(perf.get('median_cycle_days'))}, {count(perf.get('deals_won'))} deals won",
        ),
        monthly(
            "avg_deal_size",
            "Average won deal",
            "sales_performance_monthly",
            "performance",
            perf,
            "avg_deal_size",
            lambda v: money(v, cur),
            note=f"{count(perf.get('deals_won'))} deals won, {money(perf.get('won_amount'), cur, short=True)} in all",
            approx=approx_money(perf.get("avg_deal_size"), cur),
        ),
        monthly(
            "new_customer_share",
            "Revenue from new customers, share",
            "revenue_monthly",
            "revenue",
            revenue,
            "new_customer_revenue_share",
            percent,
            note=f"of {money(revenue.get('revenue'), cur)} revenue",
        ),
        monthly(
            "repeat_purchase_rate",
            "Repeat-purchase rate",
            "repeat_purchase_monthly",
            "repeat",
            repeat,
            "repeat_purchase_rate",
            percent,
            note=(
                f"{count(repeat.get('customers_with_repeat_purchase'))} of "
                f"{count(repeat.get('customers_with_purchase'))} buying customers bought twice or more"
            ),
        ),
        Tile(
            name="potential_value",
            label="Potential value of existing customers",
            value=customers.get("potential_value"),
            text=money(customers.get("potential_value"), cur),
            approx=approx_money(customers.get("potential_value"), cur),
            period=f"as of {as_of:%d %b %Y}",
            source="customer_value.potential_contract_value (sum)",
            note=f"{count(customers.get('customers'))} existing customers; the mart keeps no history",
        ),
        monthly(
            "retention_rate",
            "Customer retention rate (CRR)",
            "retention_monthly",
            "retention",
            retention,
            "retention_rate",
            percent,
            note=f"of {count(retention.get('customers_start'))} customers active at the previous month's end",
        ),
        monthly(
            "churn_rate",
            "Churn rate",
            "retention_monthly",
            "retention",
            retention,
            "churn_rate",
            percent,
            note=f"{count(retention.get('customers_churned'))} customers churned",
        ),
    ]
