"""The report's charts: matplotlib figures rendered to inline SVG (no pyplot, no global backend).

Each function takes rows of a published mart and returns a `Chart`: a name (the HTML's
`data-chart`), a title, the SVG markup and the number of data points plotted (`data-points`).
Empty input gives a chart that says "No data published yet" and has 0 points.
Glyphs are drawn as paths, so a chart looks the same everywhere and needs no font. The stages,
their order and display names are the dbt seed's (`b2b_pipeline.stages`).
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from b2b_pipeline.reporting.report_data import Row, is_partial_month
from b2b_pipeline.stages import cycle_stage_keys, stage_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN = 7.6
HEIGHT_IN = 3.5
BLUE = "#1f6feb"
LIGHT_BLUE = "#9ec5fe"
ORANGE = "#d97706"
GREEN = "#1a7f37"
RED = "#cf222e"
GREY = "#8c959f"
PARTIAL_SHADE = "#fff8c5"  # the month to date's background, as the page's "month to date" label
PARTIAL_TEXT = "#7d4e00"
COHORT_COLORS = ("#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08306b")
NO_DATA = "No data published yet"

RC = {
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#d0d7de",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "path",
    "svg.hashsalt": "b2b-report",  # stable ids: the same data renders to the same bytes
}


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    svg: str
    points: int
    caption: str = ""
    axes: tuple[str, ...] = ()  # the axis labels (with their units), as drawn
    value_from: tuple[float, ...] = ()  # where each value axis starts, as drawn (0: nothing exaggerated)
    partial: str = ""  # the month marked "to date" ("2026-11"), if any


# ----------------------------------------------------------------------------------- helpers


def short_number(value: float | Decimal) -> str:
    """1234567 -> '1.23M', 25000 -> '25K', 0.5 -> '0.5'; from 1000T on, a power of ten: 1e308 -> '1.00e+308'.

    Three significant digits, rounded from the exact value: a Decimal is scaled as a Decimal, and only
    its three-digit mantissa (below 1000) is formatted as a float, which cannot add noise to it.
    """
    number = value if isinstance(value, Decimal) else Decimal(str(float(value)))
    if not number.is_finite():
        return str(value)
    if abs(number) >= _SHORT_LIMIT:
        return f"{number:.2e}"
    units = ((1, ""), (10**3, "K"), (10**6, "M"), (10**9, "B"), (10**12, "T"))
    for limit, suffix in reversed(units):
        mantissa = f"{float(number / limit):.3g}"
        if abs(float(mantissa)) >= 1:  # the largest unit the number reaches, after rounding (999,999 -> 1M)
            return f"{number:.2e}" if abs(float(mantissa)) >= 1000 else mantissa + suffix
    return f"{float(number):.3g}"


_SHORT_LIMIT = Decimal(10) ** 15


def _month_dt(month: date) -> datetime:
    return datetime.combine(month, time(0))


def _values(rows: Sequence[Row], column: str) -> tuple[list[datetime], list[float]]:
    """The months and the non-NULL values of `column` (months where it is NULL are left out)."""
    pairs = [(_month_dt(r["month"]), float(r[column])) for r in rows if r.get(column) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _figure(rows: int = 1, height: float = HEIGHT_IN) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0].tolist()
    return fig, axes


def _month_axis(ax: Axes, label: str, rows: Sequence[Row] = (), partial: date | None = None) -> None:
    """Months on x (all of `rows`' months in view, NULL values or not), labelled `label`. With `partial`
    (the as-of date of a month to date shown last), that month is shaded and marked "to <day> <month>"."""
    import matplotlib.dates as mdates

    months = [r["month"] for r in rows if r.get("month") is not None]
    if months:
        ax.set_xlim(_month_dt(min(months)) - timedelta(days=20), _month_dt(max(months)) + timedelta(days=20))
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(label)
    if partial is not None and months and max(months) == partial.replace(day=1):
        _mark_partial(ax, partial)


def _mark_partial(ax: Axes, as_of: date, text: bool = True) -> None:
    """Shade the month of `as_of` (month to date) and say "to <day> <month>" above it."""
    from matplotlib.transforms import blended_transform_factory

    middle = _month_dt(as_of.replace(day=1))
    span = ax.axvspan(middle - timedelta(days=15), middle + timedelta(days=15), color=PARTIAL_SHADE, zorder=0, lw=0)
    span.set_gid("partial-month")
    if text:
        ax.text(
            middle,
            0.99,
            f"to {as_of.day} {as_of:%b}",
            transform=blended_transform_factory(ax.transData, ax.transAxes),
            ha="center",
            va="top",
            fontsize=7,
            color=PARTIAL_TEXT,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            zorder=5,
        ).set_gid("partial-month-label")


def _partial(as_of: date | None) -> date | None:
    """`as_of` when its month is month to date (not its month's last day), else None."""
    return as_of if as_of is not None and is_partial_month(as_of) else None


def _percent_axis(ax: Axes, label: str, decimals: int | None = None) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
    ax.set_ylabel(label)


def _money_axis(ax: Axes, label: str) -> None:
    _count_axis(ax)
    ax.set_ylabel(label)


def _count_axis(ax: Axes) -> None:
    """Ticks with thousands separators (1,200,000; from 1000T on, a power of ten), the value axis from 0."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: f"{v:,.0f}" if abs(v) < _SHORT_LIMIT else short_number(v))
    )
    ax.set_ylim(bottom=0)


def _legend(fig: Figure, handles: list[Any], ncols: int, title: str | None = None) -> None:
    """The legend below the plot, out of the data's way."""
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, title=title, title_fontsize=8)


def _no_data(ax: Axes) -> None:
    ax.text(
        0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", fontsize=12, color=GREY, style="italic"
    )
    ax.set_xticks([])
    ax.set_yticks([])


_ID = re.compile(r'\bid="([^"]+)"')


def axis_labels(fig: Figure) -> tuple[str, ...]:
    """Every non-empty axis label of the figure, in drawing order, without repeats."""
    labels: list[str] = []
    for ax in fig.axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            if label and label not in labels:
                labels.append(label)
    return tuple(labels)


def to_svg(fig: Figure, name: str, title: str, desc: str = "") -> str:
    """The figure as inline SVG: ids made unique per chart, sized by CSS, with a <title> and <desc>."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # no RDF metadata (and so no links to its vocabularies): the page names nothing outside itself
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns:(dc|cc|rdf)="[^"]*"', "", text)
    ids = set(_ID.findall(text))
    prefix = f"c-{name}-"

    def rename(match: re.Match[str]) -> str:
        key = match.group(2)
        return f"{match.group(1)}{prefix}{key}" if key in ids else match.group(0)

    text = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"(#)([A-Za-z_][\w.-]*)", rename, text)
    # size by CSS (width 100%, height from the viewBox)
    head_end = text.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", text[:head_end])
    head += f' role="img" aria-label="{_attr(title)}" preserveAspectRatio="xMidYMid meet"'
    description = f"<desc>{_text(desc)}</desc>" if desc else ""
    return head + f"><title>{_text(title)}</title>{description}" + text[head_end + 1 :]


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render(
    name: str,
    title: str,
    caption: str,
    draw: Callable[[], tuple[Figure, int]],
    value_axis: str = "y",
    as_of: date | None = None,
) -> Chart:
    """Draw and render a chart; `value_axis` is the axis its values are on, `as_of` a month to date's date."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig, points = draw()
        axes = axis_labels(fig)
        limits = [ax.get_ylim() if value_axis == "y" else ax.get_xlim() for ax in fig.axes]
        svg = to_svg(fig, name, title, desc="Axes: " + "; ".join(axes) if axes else "")
    partial = _partial(as_of)
    return Chart(
        name=name,
        title=title,
        svg=svg,
        points=points,
        caption=caption,
        axes=axes,
        value_from=tuple(float(min(low, high)) for low, high in limits) if points else (),
        partial=f"{partial:%Y-%m}" if partial and points and 'id="c-' + name + '-partial-month"' in svg else "",
    )


def _mtd_note(as_of: date | None) -> str:
    partial = _partial(as_of)
    if partial is None:
        return ""
    return f" The last month, {partial:%B %Y}, is month to date: it counts 1 to {partial.day} {partial:%b} (shaded)."


# ------------------------------------------------------------------------------------ charts


def funnel_chart(funnel: Sequence[Row]) -> Chart:
    """Stage-to-stage conversion, one line per cohort month (the most recent cohorts)."""
    title = "Funnel: conversion to the next stage, by cohort"
    caption = (
        "Share of a cohort's deals that reached a stage and went on to reach the next one. Cohort = the month "
        "the deal was created; the most recent cohorts are still in progress, so their later stages are low."
    )

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        stages, labels = cycle_stage_keys(), stage_labels()
        transitions = [f"{labels[a]}\n→ {labels[b]}" for a, b in itertools.pairwise(stages)]
        cohorts = sorted({r["cohort_month"] for r in funnel})
        points = 0
        for i, cohort in enumerate(cohorts):
            rows = {r["stage_key"]: r for r in funnel if r["cohort_month"] == cohort}
            xs, ys = [], []
            for x, stage in enumerate(stages[:-1]):
                value = rows.get(stage, {}).get("conversion_to_next")
                if value is not None:
                    xs.append(x)
                    ys.append(float(value))
            if not xs:
                continue
            leads = int(rows.get("lead", {}).get("deals_reached") or 0)
            color = COHORT_COLORS[max(0, len(COHORT_COLORS) - len(cohorts) + i)]
            ax.plot(xs, ys, marker="o", ms=4, lw=1.6, color=color, label=f"{cohort:%b %Y} ({leads:,} leads)")
            points += len(xs)
        if points == 0:
            _no_data(ax)
            return fig, 0
        ax.set_xticks(range(len(transitions)), transitions)
        ax.set_xlabel("Stage transition")
        ax.set_ylim(0, 1.05)
        _percent_axis(ax, "Deals converted to next stage, %", decimals=0)
        _legend(fig, ax.get_legend_handles_labels()[0], ncols=3, title="Cohort (month the deals were created)")
        return fig, points

    return _render("funnel", title, caption, draw)


def sales_cycle_chart(performance: Sequence[Row], as_of: date | None = None) -> Chart:
    title = "Sales cycle length of won deals"
    caption = (
        "Days from first touch (deal creation or earliest activity, whichever is earlier) to close, over "
        "the deals won in the month." + _mtd_note(as_of)
    )

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        avg_x, avg_y = _values(performance, "avg_cycle_days")
        med_x, med_y = _values(performance, "median_cycle_days")
        points = len(avg_y) + len(med_y)
        if points == 0:
            _no_data(ax)
            return fig, 0
        ax.plot(avg_x, avg_y, marker="o", ms=3, lw=1.8, color=BLUE, label="Average")
        ax.plot(med_x, med_y, marker="s", ms=3, lw=1.4, color=ORANGE, ls="--", label="Median")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("Cycle length, days")
        _month_axis(ax, "Month of closing", performance, _partial(as_of))
        _legend(fig, ax.get_legend_handles_labels()[0], ncols=2)
        return fig, points

    return _render("sales_cycle", title, caption, draw, as_of=as_of)


def deal_size_chart(performance: Sequence[Row], currency: str, as_of: date | None = None) -> Chart:
    title = f"Average won deal size, {currency}"
    caption = f"Won amount / deals won in the month, in {currency} at the close date's rate." + _mtd_note(as_of)

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        xs, ys = _values(performance, "avg_deal_size")
        if not ys:
            _no_data(ax)
            return fig, 0
        ax.bar(xs, ys, width=20, color=BLUE, label="Average won deal")
        _money_axis(ax, f"Average deal, {currency}")
        _month_axis(ax, "Month of closing", performance, _partial(as_of))
        return fig, len(ys)

    return _render("deal_size", title, caption, draw, as_of=as_of)


def win_rate_chart(performance: Sequence[Row], as_of: date | None = None) -> Chart:
    title = "Win rate"
    caption = "Deals won / (deals won + deals lost), over the deals closed in the month." + _mtd_note(as_of)

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        xs, ys = _values(performance, "win_rate")
        if not ys:
            _no_data(ax)
            return fig, 0
        closed = [
            (_month_dt(r["month"]), float(r["deals_won"] or 0) + float(r["deals_lost"] or 0)) for r in performance
        ]
        bars = ax.twinx()
        bars.bar([c[0] for c in closed], [c[1] for c in closed], width=20, color="#d8dee4", label="Deals closed")
        _count_axis(bars)
        bars.set_ylabel("Deals closed (won + lost)", color=GREY)
        bars.tick_params(axis="y", colors=GREY)
        bars.grid(False)
        bars.spines["right"].set_visible(True)
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(xs, ys, marker="o", ms=3, lw=2, color=BLUE, label="Win rate")
        ax.set_ylim(0, min(1.0, max(ys) * 1.25) if max(ys) > 0 else 1.0)
        _percent_axis(ax, "Win rate, %", decimals=0)
        _month_axis(ax, "Month of closing", performance)
        partial = _partial(as_of)
        if partial is not None and performance and performance[-1]["month"] == partial.replace(day=1):
            _mark_partial(bars, partial)  # on the bars' axes, below the line's: behind the bars
        _legend(fig, ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0], ncols=2)
        return fig, len(ys)

    return _render("win_rate", title, caption, draw, as_of=as_of)


def revenue_chart(revenue: Sequence[Row], currency: str, as_of: date | None = None) -> Chart:
    title = f"Revenue by month, {currency}, and the new-customer share"
    caption = (
        f"Paid invoices by month of payment, in {currency} at the paid date's rate; the darker part is revenue "
        "from customers paying for the first time that month. Line: the new-customer share." + _mtd_note(as_of)
    )

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        rows = [r for r in revenue if r.get("revenue") is not None]
        if not rows:
            _no_data(ax)
            return fig, 0
        xs = [_month_dt(r["month"]) for r in rows]
        new = [float(r["revenue_new_customers"] or 0) for r in rows]
        existing = [float(r["revenue"]) - n for r, n in zip(rows, new, strict=True)]
        ax.bar(xs, existing, width=20, color=LIGHT_BLUE, label="Existing customers")
        ax.bar(xs, new, width=20, bottom=existing, color=BLUE, label="New customers")
        _money_axis(ax, f"Revenue, {currency}")
        _month_axis(ax, "Month of payment", rows, _partial(as_of))
        share = ax.twinx()
        sx, sy = _values(rows, "new_customer_revenue_share")
        share.plot(sx, sy, marker="o", ms=3, lw=1.5, color=ORANGE, label="New-customer share (right axis)")
        share.set_ylim(0, max([*sy, 0.0]) * 1.3 or 1.0)
        _percent_axis(share, "New-customer share, %", decimals=0)
        share.grid(False)
        share.spines["right"].set_visible(True)
        _legend(fig, ax.get_legend_handles_labels()[0] + share.get_legend_handles_labels()[0], ncols=3)
        ax.set_ylim(0, max(float(r["revenue"]) for r in rows) * 1.2 or 1.0)
        return fig, len(rows)

    return _render("revenue", title, caption, draw, as_of=as_of)


def retention_chart(retention: Sequence[Row], as_of: date | None = None) -> Chart:
    title = "Customer retention and churn"
    caption = (
        "Of the customers with an active subscription on the previous month's last day: the share still active "
        "on the month's last day (retention, CRR) and the share no longer active (churn). Trials do not count."
        + _mtd_note(as_of)
    )

    def draw() -> tuple[Figure, int]:
        fig, (top, bottom) = _figure(rows=2, height=HEIGHT_IN * 1.25)
        top.set_title(title)
        rx, ry = _values(retention, "retention_rate")
        cx, cy = _values(retention, "churn_rate")
        if not ry and not cy:
            _no_data(top)
            _no_data(bottom)
            return fig, 0
        top.plot(rx, ry, marker="o", ms=3, lw=2, color=GREEN, label="Retention rate (CRR)")
        # from 0 to 100 %: a retention of 92 % against 95 % must not look like a collapse
        top.set_ylim(0, 1.0)
        _percent_axis(top, "Retention, %", decimals=0)
        bottom.bar(cx, cy, width=20, color=RED, label="Churn rate")
        bottom.set_ylim(bottom=0)
        _percent_axis(bottom, "Churn, %", decimals=1)
        partial = _partial(as_of)
        _month_axis(bottom, "Month", retention, partial)
        if partial is not None and retention[-1]["month"] == partial.replace(day=1):
            _mark_partial(top, partial, text=False)
        return fig, len(ry) + len(cy)

    return _render("retention", title, caption, draw, as_of=as_of)


def repeat_purchase_chart(repeat: Sequence[Row], as_of: date | None = None) -> Chart:
    title = "Repeat-purchase rate"
    caption = "Of the customers with at least one won deal by the month's end, the share with two or more." + _mtd_note(
        as_of
    )

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        xs, ys = _values(repeat, "repeat_purchase_rate")
        if not ys:
            _no_data(ax)
            return fig, 0
        ax.plot(xs, ys, marker="o", ms=3, lw=2, color=BLUE, label="Repeat-purchase rate")
        ax.set_ylim(0, min(1.0, max(ys) * 1.25) if max(ys) > 0 else 1.0)
        _percent_axis(ax, "Customers with ≥ 2 won deals, %", decimals=0)
        _month_axis(ax, "Month (as of its last day)", repeat, _partial(as_of))
        buyers = [
            (_month_dt(r["month"]), float(r["customers_with_purchase"]))
            for r in repeat
            if r.get("customers_with_purchase") is not None
        ]
        if buyers:
            count = ax.twinx()
            count.plot(
                [b[0] for b in buyers],
                [b[1] for b in buyers],
                lw=1.2,
                ls=":",
                color=GREY,
                label="Customers with a purchase (right axis)",
            )
            _count_axis(count)
            count.set_ylabel("Customers with a purchase", color=GREY)
            count.tick_params(axis="y", colors=GREY)
            count.set_ylim(bottom=0)
            count.grid(False)
            count.spines["right"].set_visible(True)
            _legend(fig, ax.get_legend_handles_labels()[0] + count.get_legend_handles_labels()[0], ncols=2)
        return fig, len(ys)

    return _render("repeat_purchase", title, caption, draw, as_of=as_of)


def stage_durations_chart(rows: Sequence[Row], months: tuple[date, date] | None = None) -> Chart:
    span = f" ({months[0]:%b %Y} to {months[1]:%b %Y})" if months else ""
    title = "Average days in stage"
    caption = (
        f"Stays completed in each stage, over the stage entries of the last months{span}; "
        "a stay ends when the deal moves on or closes."
    )

    def draw() -> tuple[Figure, int]:
        fig, (ax,) = _figure()
        ax.set_title(title)
        stages, stage_names = cycle_stage_keys(), stage_labels()
        known = [r for r in rows if r.get("avg_days_in_stage") is not None and r.get("stage_key") in stages]
        known.sort(key=lambda r: stages.index(r["stage_key"]))
        if not known:
            _no_data(ax)
            return fig, 0
        labels = [stage_names[r["stage_key"]] for r in known]
        values = [float(r["avg_days_in_stage"]) for r in known]
        ys = list(range(len(known)))
        ax.barh(ys, values, color=BLUE)
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        for y, value, row in zip(ys, values, known, strict=True):
            stays = int(row.get("completed_stays") or 0)
            ax.annotate(
                f"{value:.1f} d  ({stays:,} stays)",
                (value, y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.set_xlim(0, max(values) * 1.3 or 1.0)
        ax.set_xlabel("Average days in stage, days")
        ax.set_ylabel("Stage")
        return fig, len(values)

    return _render("stage_durations", title, caption, draw, value_axis="x")


def all_charts(snapshot: Any, as_of: date | None, months: int) -> list[Chart]:
    """Every chart of the report, in page order, for a `MartsSnapshot` (monthly marts: last `months`)."""

    def last(rows: Sequence[Row]) -> list[Row]:
        return list(rows)[-months:] if months > 0 else list(rows)

    currency = snapshot.currency
    return [
        funnel_chart(snapshot.funnel),
        win_rate_chart(last(snapshot.performance), as_of),
        deal_size_chart(last(snapshot.performance), currency, as_of),
        sales_cycle_chart(last(snapshot.performance), as_of),
        stage_durations_chart(snapshot.stage_durations, snapshot.stage_months),
        revenue_chart(last(snapshot.revenue), currency, as_of),
        retention_chart(last(snapshot.retention), as_of),
        repeat_purchase_chart(last(snapshot.repeat), as_of),
    ]
