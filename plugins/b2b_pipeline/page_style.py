"""The look of the project's HTML pages (the quality gate's `quality.html` and the sales report), and the
Jinja2 environment both are rendered with.

Both pages inline the stylesheet (they are self-contained files). It lives here, below both packages,
because the quality package must not import the reporting package (reporting is the higher layer).
Each package keeps its own templates (`<package>/templates/`, shipped as package data) and gets its
environment from `templates(folder)`: autoescaping on for every template, undefined names an error,
and the number filters both pages use.

The unscoped rules are the plain page, the quality report as it looks: white, bordered tables. The
sales report, a dashboard of white cards on grey, marks its `<body class="sales-report">`; its rules
are scoped by that class and override, property by property, the plain ones that would otherwise
reach it (the quality page's markup has no class of its own to scope by). The badge colours are
shared: a gate status has one colour on both pages.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

SALES_REPORT = "sales-report"  # the class of the sales report's <body>


def exact(value: Any) -> Decimal:
    """A number as an exact Decimal (a Decimal as is, an int exactly, a float by its shortest text)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value) if isinstance(value, int) else Decimal(str(value))


def thousands(value: Any, decimals: int = 0) -> str:
    """A number with thousands separators, rounded from its exact value: 1234567.5 -> '1,234,568';
    None -> '–'. A numeric of 309 digits shows all of them (no float noise)."""
    return "–" if value is None else f"{exact(value):,.{decimals}f}"


def templates(folder: Path, **filters: Callable[..., Any]) -> Any:
    """A Jinja2 environment of the templates in `folder`: autoescaped, strict, with the `thousands` filter
    and `filters`. Build it once (it caches the compiled templates)."""
    import jinja2
    import markupsafe

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,  # every template, whatever its name ends with
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["thousands"] = thousands
    env.filters.update(filters)
    env.globals["STYLESHEET"] = markupsafe.Markup(STYLESHEET)  # the project's own text, not data
    env.globals["SALES_REPORT"] = SALES_REPORT
    return env


STYLESHEET = """
/* the plain page: the quality report */
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}.muted{color:#656d76}
table{border-collapse:collapse;width:100%;margin-top:6px}th,td{border:1px solid #d0d7de;padding:6px 8px;
vertical-align:top;text-align:left}th{background:#f6f8fa;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.badge.passed{background:#1a7f37}.badge.blocked{background:#cf222e}.badge.warn,.badge.warned{background:#9a6700}
.badge.unknown,.badge.skipped{background:#6e7781}
/* the quality report's own classes */
.verdict{display:inline-block;padding:4px 12px;border-radius:6px;font-weight:600;color:#fff}
.verdict.passed{background:#1a7f37}.verdict.blocked{background:#cf222e}
tr.blocked td{background:#ffebe9}tr.warned td{background:#fff8c5}
.desc{color:#656d76;font-size:12px;margin-top:2px}
table.ex{width:auto;margin:0}table.ex td,table.ex th{padding:2px 6px;font-size:12px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:12px 0}dt{color:#656d76}dd{margin:0}
details.folded{margin-top:28px}details.folded>summary{cursor:pointer;font-size:17px;font-weight:600;
border-bottom:1px solid #d0d7de;padding-bottom:4px}details.folded h3{font-size:15px;margin:16px 0 6px}
p.allclear{background:#dafbe1;border:1px solid #1a7f37;border-radius:6px;padding:8px 12px}
/* the sales report: <body class="sales-report"> */
.sales-report,.sales-report *{box-sizing:border-box}
body.sales-report{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,
sans-serif;margin:0;background:#f6f8fa}
.sales-report main{max-width:1320px;margin:0 auto;padding:20px 24px 40px}
.sales-report header.top{background:#fff;border-bottom:1px solid #d0d7de;padding:16px 24px}
.sales-report header.top .inner{max-width:1320px;margin:0 auto;display:flex;flex-wrap:wrap;gap:10px 28px;
align-items:baseline}
.sales-report h1{margin:0}.sales-report h2{margin:28px 0 10px;border-bottom:0;padding-bottom:0}
.sales-report .facts{display:flex;flex-wrap:wrap;gap:6px 22px;color:#424a53}.sales-report .facts b{color:#1f2328}
.sales-report .badge{padding:2px 10px}
.sales-report .banner{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;margin:14px 0 0}
.sales-report .banner.bad{background:#ffebe9;border-color:#cf222e}
.sales-report .kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px;margin-top:16px}
.sales-report .kpi{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px}
.sales-report .kpi .label{color:#424a53;font-size:13px;font-weight:600}
.sales-report .kpi .value{font-size:22px;font-weight:600;margin:2px 0;overflow-wrap:break-word;
font-variant-numeric:tabular-nums}.sales-report .kpi .period,.sales-report .kpi .prev{color:#656d76;font-size:12px}
.sales-report .partial{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;font-weight:600;
color:#7d4e00;background:#fff8c5;border:1px solid #d4a72c}
.sales-report .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
.sales-report figure.chart{background:#fff;border:1px solid #d0d7de;border-radius:8px;margin:0;padding:10px 12px}
.sales-report figure.chart svg{display:block;width:100%;height:auto}
.sales-report figcaption{color:#656d76;font-size:12px;margin-top:4px}
.sales-report .card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 12px;overflow-x:auto}
.sales-report table{margin-top:0}
.sales-report th,.sales-report td{padding:5px 8px;border:0;border-bottom:1px solid #eaeef2;vertical-align:inherit;
white-space:nowrap}.sales-report th{font-size:12px;color:#424a53;font-weight:bold}
.sales-report td.num,.sales-report th.num{text-align:right;font-variant-numeric:tabular-nums}
.sales-report td.name{white-space:normal}
.sales-report code{font-family:monospace;font-size:inherit}
.sales-report footer{color:#656d76;font-size:12px;margin-top:28px}
.sales-report a{color:#0969da}
"""
