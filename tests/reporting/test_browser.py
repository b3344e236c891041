"""The report in a real browser: Debian's headless Chromium, driven over the DevTools Protocol.

Every chart must render with a visible size, the page must log no console error or exception and
request nothing but its own file, and a full-page screenshot is kept (its path is printed; set
`B2B_REPORT_SCREENSHOT_DIR` to keep a copy elsewhere). Skipped when Chromium is not installed
(`apt-get install chromium`) or the `websockets` package is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .headless_chromium import HeadlessChromium, chromium_binary
from .test_report import CHARTS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_binary() is None, reason="no Chromium at /usr/bin/chromium (apt-get install chromium)"),
]

CHART_SIZES = """
[...document.querySelectorAll('figure[data-chart]')].map(f => {
  const svg = f.querySelector('svg');
  const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {name: f.dataset.chart, points: Number(f.dataset.points), width: r.width, height: r.height,
          shapes: svg ? svg.querySelectorAll('path, use, rect').length : 0};
})
"""

TABLE_SIZES = """
Object.fromEntries([...document.querySelectorAll('table[data-table]')].map(
  t => [t.dataset.table, {rows: t.tBodies[0].rows.length, width: t.getBoundingClientRect().width}]))
"""


def test_report_renders_in_chromium(built_report: Path, b2b_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("websockets", reason="the CDP client needs the websockets package")
    shot = tmp_path / "sales-report.png"
    with HeadlessChromium(tmp_path / "chromium", width=1280, height=1000) as browser:
        browser.open(built_report.as_uri())
        charts = browser.evaluate(CHART_SIZES)
        tables = browser.evaluate(TABLE_SIZES)
        title = browser.evaluate("document.title")
        browser.screenshot(shot)
        errors, requests = list(browser.problems.errors), list(browser.problems.requests)
        # the listener works: a console error made on purpose is seen
        browser.evaluate("console.error('probe'); 1")
        browser.evaluate("new Promise(r => setTimeout(r, 50))")
        probe = list(browser.problems.console_errors)

    assert title == "B2B sales report, as of 2026-11-25"
    assert [c["name"] for c in charts] == list(CHARTS)
    for chart in charts:
        assert chart["points"] > 0, chart
        assert chart["width"] > 300 and chart["height"] > 120, chart
        assert chart["shapes"] > 10, chart
    assert tables["top_customers"]["rows"] == 20 and tables["top_customers"]["width"] > 600
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
