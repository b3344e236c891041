"""The gate's reports: `gate.json` (read by the orchestration and the CLI) and `quality.html`.

Both go to `B2B_HOME/reports/<as-of date>/`, rewritten by every gate run of that night;
GX Data Docs of the run, when they render, go to `data_docs/` next to them (not linked from
`quality.html`: they need the internet). The page is the Jinja2 template `templates/quality.html.j2`.
This module imports neither Great Expectations nor the runner, so that reading where the
verdict is costs nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from b2b_pipeline.config import reports_dir
from b2b_pipeline.files import open_folder, write_atomically
from b2b_pipeline.page_style import templates

if TYPE_CHECKING:
    from b2b_pipeline.quality.result import GateResult

LAYER_ORDER = ("raw", "staging", "core", "marts")
# a night's folder, whatever the umask: others (the web server, the Airflow plugin, other users) can list
# and read it; its files are `files.READABLE` (0o644)


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
    write_atomically(paths.html, render_html(result))
    open_folder(paths.html.parent)
    return paths


# ------------------------------------------------------------------------------------------ HTML

TEMPLATES = Path(__file__).resolve().parent / "templates"  # shipped as package data (pyproject.toml)
PAGE = "quality.html.j2"


@cache
def _environment() -> Any:
    return templates(TEMPLATES, tolerance=_tolerance, cell=_cell, example_columns=_example_columns)


def render_html(result: GateResult) -> str:
    """The night's validation report as one self-contained HTML page: what blocked and what warned
    first, then the skipped checks and the run, and the passed checks folded (`<details>`), by layer.

    GX Data Docs of the run are named but not linked: their pages load Bootstrap, jQuery and fonts from
    public CDNs and do not render without the internet."""
    passed = [c for c in result.checks if c.status == "passed"]
    layers = [*LAYER_ORDER, *sorted({c.layer for c in passed} - set(LAYER_ORDER))]
    passed_layers = [
        (layer, result.schemas.get(layer, ""), [c for c in passed if c.layer == layer])
        for layer in layers
        if any(c.layer == layer for c in passed)
    ]
    page = _environment().get_template(PAGE)
    return page.render(
        as_of=result.as_of.isoformat(),
        passed=result.passed,
        verdict="passed" if result.passed else "blocked",
        counts=result.counts(),
        blocking=result.blocking,
        warnings=result.warnings,
        skipped=[c for c in result.checks if c.status == "skipped"],
        passed_count=len(passed),
        passed_layers=passed_layers,
        started_at=result.started_at.isoformat(timespec="seconds"),
        duration=result.duration_seconds,
        batches=_batches(result.since_batch_id, result.through_batch_id),
        schemas=list(result.schemas.items()),
        settings=list(result.settings.items()),
        data_docs=bool(result.data_docs),
    )


def _batches(since: int, through: int) -> str:
    if through <= since:
        return f"none (all batches through {since} were checked by a passed run)"
    if through == since + 1:
        return f"batch {through}"
    return f"batches {since + 1} to {through}"


def _tolerance(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.3g}%"


def _example_columns(examples: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: list[str] = []
    for example in examples:
        columns.extend(str(k) for k in example if str(k) not in columns)
    return columns


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
