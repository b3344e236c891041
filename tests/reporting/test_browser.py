"""The report in a real browser: Debian's headless Chromium, driven by Playwright (sync API).

Every chart must render with a visible size, the page must log no console error or exception and
request nothing but its own file, the quality page beside it must show what failed and keep the passed
checks folded, and a full-page screenshot is kept (its path is printed; set `B2B_REPORT_SCREENSHOT_DIR`
to keep a copy elsewhere).

Chromium is Debian's package (`apt-get install chromium`; `B2B_CHROMIUM` names another binary), never
one downloaded by `playwright install`. Without it the test is skipped, with the reason, except under
CI (the `CI` environment variable set), where a browser test that cannot run fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from b2b_pipeline.quality.report import write_reports
from quality.gate_results import gate_result  # tests/quality/gate_results.py

from .conftest import AS_OF
from .test_report import CHARTS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DEFAULT_CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking")


def chromium_binary() -> str | None:
    """The Chromium to drive (`B2B_CHROMIUM`, else Debian's /usr/bin/chromium), or None when there is none."""
    candidate = os.environ.get("B2B_CHROMIUM") or DEFAULT_CHROMIUM
    path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
    return path if path and os.access(path, os.X_OK) else None


def _cannot_run(reason: str) -> NoReturn:
    """Skip, or under CI fail: there a browser test that does not run is a broken setup, not a choice."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set and the browser test cannot run: {reason}")
    pytest.skip(reason)


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        (None, pytest.skip.Exception),
        ("", pytest.skip.Exception),
        ("false", pytest.skip.Exception),
        ("true", pytest.fail.Exception),
        ("1", pytest.fail.Exception),
    ],
)
def test_without_chromium_skip_or_under_ci_fail(ci: str | None, outcome: type, monkeypatch: pytest.MonkeyPatch) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no Chromium"):
        _cannot_run("no Chromium at /nowhere")


CHART_SIZES = """
() => [...document.querySelectorAll('figure[data-chart]')].map(f => {
  const svg = f.querySelector('svg');
  const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {name: f.dataset.chart, points: Number(f.dataset.points), width: r.width, height: r.height,
          shapes: svg ? svg.querySelectorAll('path, use, rect').length : 0};
})
"""

TABLE_SIZES = """
() => Object.fromEntries([...document.querySelectorAll('table[data-table]')].map(
  t => [t.dataset.table, {rows: t.tBodies[0].rows.length, width: t.getBoundingClientRect().width}]))
"""

TILES = """
() => [...document.querySelectorAll('[data-tile]')].map(t => {
  const r = t.getBoundingClientRect();
  return {name: t.dataset.tile, top: r.top, width: r.width, height: r.height,
          value: t.querySelector('.value').innerText};
})
"""


@dataclass
class Browsing:
    """A page of a fresh headless Chromium, and what it logged and requested."""

    page: Page
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the module's tests (Playwright's driver and the browser start once)."""
    binary = chromium_binary()
    if binary is None:
        wanted = os.environ.get("B2B_CHROMIUM") or DEFAULT_CHROMIUM
        _cannot_run(f"no Chromium at {wanted} (apt-get install chromium, or B2B_CHROMIUM=<its path>)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _cannot_run("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True, args=list(FLAGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browsing(chromium: Browser) -> Iterator[Browsing]:
    """A page in a fresh context (no state shared between tests), and what it logs and requests."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    try:
        seen = Browsing(context.new_page())
        seen.page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
        seen.page.on("pageerror", lambda e: seen.errors.append(str(e)))
        seen.page.on("request", lambda r: seen.requests.append(r.url))
        yield seen
    finally:
        context.close()


@pytest.mark.integration
def test_report_renders_in_chromium(browsing: Browsing, built_report: Path, b2b_home: Path, tmp_path: Path) -> None:
    page = browsing.page
    shot = tmp_path / "sales-report.png"
    page.goto(built_report.as_uri(), wait_until="load")
    charts = page.evaluate(CHART_SIZES)
    tables = page.evaluate(TABLE_SIZES)
    tiles = page.evaluate(TILES)
    title = page.title()
    page.screenshot(path=str(shot), full_page=True)
    errors, requests = list(browsing.errors), list(browsing.requests)
    # the listener works: a console error made on purpose is seen
    page.evaluate("console.error('probe')")
    page.wait_for_timeout(50)
    probe = list(browsing.errors)

    assert title == "B2B sales report, as of 2026-11-25"
    assert [c["name"] for c in charts] == list(CHARTS)
    for chart in charts:
        assert chart["points"] > 0, chart
        assert chart["width"] > 300 and chart["height"] > 120, chart
        assert chart["shapes"] > 10, chart
    assert tables["top_customers"]["rows"] == 20 and tables["top_customers"]["width"] > 600
    # the eight tiles are on the first screen, each wide enough for its value
    assert len(tiles) == 8
    for tile in tiles:
        assert tile["top"] < 1000 and tile["width"] > 150 and tile["value"] not in ("", "–"), tile
    assert errors == [], errors
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests
    assert "probe" in probe

    assert shot.stat().st_size > 50_000
    keep = b2b_home / "reports" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, keep / shot.name)
    if os.environ.get("B2B_REPORT_SCREENSHOT_DIR"):
        target = Path(os.environ["B2B_REPORT_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, target / shot.name)
    print(f"screenshot: {shot}")


@pytest.mark.integration
def test_quality_page_shows_failures_and_folds_the_passed(browsing: Browsing, tmp_path: Path) -> None:
    page = browsing.page
    html = write_reports(gate_result(AS_OF), tmp_path).html
    page.goto(html.as_uri(), wait_until="load")
    visible = page.evaluate(
        "() => [...document.querySelectorAll('tr[data-check]')].map(r => [r.dataset.status, r.checkVisibility()])"
    )
    assert ("blocked", True) in [tuple(v) for v in visible]
    assert ("warned", True) in [tuple(v) for v in visible]
    assert all(shown is False for status, shown in visible if status == "passed")
    page.click("details[data-section=passed] > summary")
    shown = page.evaluate(
        "() => [...document.querySelectorAll('tr[data-status=passed]')]"
        ".every(r => r.checkVisibility() && r.getBoundingClientRect().height > 0)"
    )
    assert shown is True
    assert browsing.errors == []
