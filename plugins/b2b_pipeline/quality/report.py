"""The gate's reports: `gate.json` (read by the orchestration and the CLI) and `quality.html`.

Both go to `B2B_HOME/reports/<as-of date>/`, rewritten by every gate run of that night;
GX Data Docs of the run, when they render, go to `data_docs/` next to them.
This module imports neither Great Expectations nor the runner, so that reading where the
verdict is costs nothing.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from b2b_pipeline.config import reports_dir
from b2b_pipeline.files import write_atomically
from b2b_pipeline.page_style import STYLESHEET

if TYPE_CHECKING:
    from b2b_pipeline.quality.result import CheckResult, GateResult

LAYER_ORDER = ("raw", "staging", "core", "marts")


def report_dir(home: Path, as_of: date) -> Path:
    """The folder of one night's reports."""
    return reports_dir(home) / as_of.isoformat()


def gate_result_path(home: Path, as_of: date) -> Path:
    """The gate's verdict for the night of `as_of`: JSON with `passed` and `checks`."""
    return report_dir(home, as_of) / "gate.json"


def html_report_path(home: Path, as_of: date) -> Path:
    """The night's self-contained HTML validation report."""
    return report_dir(home, as_of) / "quality.html"


def data_docs_dir(home: Path, as_of: date) -> Path:
    """Where the GX Data Docs of the night's gate run are rendered."""
    return report_dir(home, as_of) / "data_docs"


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    html: Path


def write_reports(result: GateResult, home: Path) -> ReportPaths:
    """Write `gate.json` and `quality.html` for the result's night (atomically each)."""
    paths = ReportPaths(json=gate_result_path(home, result.as_of), html=html_report_path(home, result.as_of))
    paths.json.parent.mkdir(parents=True, exist_ok=True)
    document = result.to_dict()
    document["report"] = str(paths.html)
    write_atomically(paths.json, json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    write_atomically(paths.html, render_html(result, data_docs=_relative_docs(result, paths.html.parent)))
    return paths


def _relative_docs(result: GateResult, folder: Path) -> str | None:
    if not result.data_docs:
        return None
    try:
        return str(Path(result.data_docs).relative_to(folder))
    except ValueError:
        return Path(result.data_docs).as_uri()


# ------------------------------------------------------------------------------------------ HTML


def render_html(result: GateResult, data_docs: str | None = None) -> str:
    """The night's validation report as one self-contained HTML page."""
    e = html.escape
    counts = result.counts()
    verdict = "passed" if result.passed else "blocked"
    title = f"Quality gate, night of {result.as_of.isoformat()}: {verdict.upper()}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLESHEET}</style></head><body>",
        f"<h1>Quality gate, night of {e(result.as_of.isoformat())}</h1>",
        f'<p><span class="verdict {verdict}">{verdict.upper()}</span> ',
        (
            "the night may publish."
            if result.passed
            else "the night does not publish; the published marts stay as they were."
        ),
        "</p><dl>",
        f"<dt>checks</dt><dd>{counts['checks']}: {counts['passed']} passed, {counts['warned']} warned, "
        f"{counts['blocked']} blocked, {counts['skipped']} skipped</dd>",
        f"<dt>run</dt><dd>{e(result.started_at.isoformat(timespec='seconds'))}, {result.duration_seconds:.1f} s</dd>",
        f"<dt>tonight's load batches</dt><dd>{_batches(result.since_batch_id, result.through_batch_id)}</dd>",
        "<dt>schemas</dt><dd>"
        + ", ".join(f"{e(layer)}: <code>{e(schema)}</code>" for layer, schema in result.schemas.items())
        + "</dd>",
    ]
    if data_docs:
        parts.append(f'<dt>GX Data Docs</dt><dd><a href="{e(data_docs)}">{e(data_docs)}</a></dd>')
    parts.append("</dl>")
    if result.blocking:
        parts.append("<h2>Why the night is blocked</h2>")
        parts.append(_table(result.blocking))
    if result.warnings:
        parts.append("<h2>Warnings</h2>")
        parts.append(_table(result.warnings))
    for layer in [*LAYER_ORDER, *sorted({c.layer for c in result.checks} - set(LAYER_ORDER))]:
        checks = [c for c in result.checks if c.layer == layer]
        if checks:
            schema = result.schemas.get(layer, "")
            parts.append(f"<h2>Layer {e(layer)} <span class='muted'>(<code>{e(schema)}</code>)</span></h2>")
            parts.append(_table(checks))
    parts.append(
        "<p class='muted'>Checks and tolerances: <code>expectations/*.yml</code>; "
        "see docs/quality-gate.md.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def _batches(since: int, through: int) -> str:
    if through <= since:
        return f"none (all batches through {since} were checked by a passed run)"
    if through == since + 1:
        return f"batch {through}"
    return f"batches {since + 1} to {through}"


def _table(checks: Sequence[CheckResult]) -> str:
    e = html.escape
    rows = [
        "<table><thead><tr><th>status</th><th>check</th><th>table</th><th>severity</th>"
        "<th>observed</th><th>tolerance</th><th>examples</th></tr></thead><tbody>"
    ]
    for c in checks:
        rows.append(
            f"<tr class='{e(c.status)}'><td><span class='badge {e(c.status)}'>{e(c.status)}</span></td>"
            f"<td><code>{e(c.name)}</code><div class='desc'>{e(c.description)}</div>"
            f"<div class='desc'>{e(c.expectation)}</div></td>"
            f"<td><code>{e(c.table)}</code></td><td>{e(c.severity)}</td>"
            f"<td>{e(c.summary)}</td><td>{_tolerance(c.tolerance)}</td><td>{_examples(c.examples)}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _tolerance(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.3g}%"


def _examples(examples: Sequence[Mapping[str, Any]]) -> str:
    if not examples:
        return ""
    e = html.escape
    columns: list[str] = []
    for example in examples:
        columns.extend(k for k in example if k not in columns)
    head = "".join(f"<th>{e(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(_cell(example.get(c)))}</td>" for c in columns) + "</tr>" for example in examples
    )
    return f"<table class='ex'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    """An example's value as shown: long text is cut at 300 characters, a number never (the gate keeps
    a numeric that a float cannot hold as its exact decimal text, e.g. the 309 digits of 1e308)."""
    if value is None:
        return "NULL"
    text = str(value)
    if len(text) <= 300 or _NUMBER.fullmatch(text):
        return text
    return text[:297] + "..."


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
