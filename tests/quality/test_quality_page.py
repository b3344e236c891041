"""The quality page (`quality.html`): what failed or warned first, the passed checks folded, nothing that
needs the internet linked, readable by all whatever the umask. No database needed."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.quality.report import render_html, write_reports

from .gate_results import gate_result

AS_OF = date(2026, 3, 31)


def _position(page: str, marker: str) -> int:
    index = page.find(marker)
    assert index >= 0, marker
    return index


def test_failed_and_warned_checks_come_first_and_the_passed_are_folded() -> None:
    page = render_html(gate_result(AS_OF))
    blocked = _position(page, 'data-check="core.deals_account_exists"')
    warned = _position(page, 'data-check="core.amount_outliers"')
    skipped = _position(page, 'data-check="marts.previous_night_close"')
    folded = _position(page, '<details class="folded" data-section="passed">')
    end = _position(page, "</details>")
    passed = [m.start() for m in re.finditer(r'data-status="passed"', page)]
    assert len(passed) == 3
    # the run lists the passed checks first; the page puts them last, inside the closed <details>
    assert blocked < warned < skipped < folded < min(passed) and max(passed) < end
    assert "<details open" not in page
    assert "3 checks passed</summary>" in page
    assert page.count("<h3>Layer ") == 3  # the passed checks by layer: raw, core, marts
    assert "No check failed or warned" not in page


def test_a_clean_night_says_so_before_the_folded_checks() -> None:
    result = gate_result(AS_OF, blocked=False)
    result.checks = [c for c in result.checks if c.status == "passed"]
    page = render_html(result)
    assert _position(page, 'data-section="allclear"') < _position(page, 'data-section="passed"')
    assert 'data-section="blocked"' not in page and 'data-section="warned"' not in page
    assert "PASSED" in page and "Why the night is blocked" not in page


def test_text_is_escaped_and_data_docs_are_not_linked() -> None:
    page = render_html(gate_result(AS_OF, data_docs="/h/reports/2026-03-31/data_docs/index.html"))
    assert "D&lt;1&gt;" in page and "D<1>" not in page
    assert "A&amp;9" in page
    # GX Data Docs load Bootstrap and jQuery from CDNs: named, never linked; the page links nothing at all
    assert "data_docs" in page and "<a " not in page and "href" not in page
    assert not re.search(r"<script|<link|<img|@import|url\(", page, re.IGNORECASE)


def test_files_and_folder_are_readable_by_all_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        paths = write_reports(gate_result(AS_OF), tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(paths.html.stat().st_mode) == 0o644
    assert stat.S_IMODE(paths.json.stat().st_mode) == 0o644
    assert stat.S_IMODE(paths.html.parent.stat().st_mode) == 0o755


def test_the_night_s_settings_are_in_the_page_and_in_gate_json(tmp_path: Path) -> None:
    result = gate_result(AS_OF)
    result.settings = {
        "reporting_currency": "EUR",
        "fx_base_currency": "RUB",
        "reporting_timezone": "Europe/Moscow",
        "sales_pipelines": "sales,renewals",
    }
    page = render_html(result)
    section = page[_position(page, 'data-section="settings"') :]
    for key, value in result.settings.items():
        assert f'data-setting="{key}">{key}: <code>{value}</code>' in section
    paths = write_reports(result, tmp_path)
    assert json.loads(paths.json.read_text(encoding="utf-8"))["settings"] == result.settings


def test_the_gate_records_the_deployment_s_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from b2b_pipeline.quality.gate import shown_settings

    monkeypatch.setenv("B2B_HOME", str(tmp_path))
    (tmp_path / "b2b.yml").write_text("reporting_timezone: Asia/Tokyo\nsales_pipelines: [a, b]\n", encoding="utf-8")
    assert shown_settings() == {
        "reporting_currency": "RUB",
        "fx_base_currency": "RUB",
        "reporting_timezone": "Asia/Tokyo",
        "sales_pipelines": "a, b",
    }
