"""Naming a night: its as-of date from the run's conf or data interval, its drop from the conf or B2B_SOURCE_DIR."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from b2b_pipeline.night import Night, NightConfigError, resolve_night


def test_the_conf_names_the_night(tmp_path: Path) -> None:
    night = resolve_night({"as_of_date": "2026-11-25", "source_dir": str(tmp_path)}, None)
    assert night == Night(date(2026, 11, 25), tmp_path.resolve())
    assert Night.from_dict(night.as_dict()) == night


def test_a_scheduled_run_counts_the_day_before_its_interval_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_SOURCE_DIR", str(tmp_path))
    night = resolve_night(None, datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    assert night == Night(date(2026, 11, 25), tmp_path.resolve())


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"as_of_date": "2026-13-01"}, "is not a date"),
        ({}, "no as_of_date"),
        ({"as_of_date": "2026-11-25"}, "B2B_SOURCE_DIR is not set"),
        ({"as_of_date": "2026-11-25", "source_dir": "/no/such/drop"}, "does not exist"),
    ],
)
def test_a_night_that_cannot_be_named(conf: dict, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("B2B_SOURCE_DIR", raising=False)
    with pytest.raises(NightConfigError, match=message):
        resolve_night(conf, None)


def test_a_scheduled_run_counts_the_last_day_over_in_the_reporting_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """04:00 in New York on 26 Nov is 09:00 UTC: the night of 25 Nov; 04:00 UTC on 26 Nov would still
    be 25 Nov in New York, whose last complete day is the 24th."""
    monkeypatch.setenv("B2B_SOURCE_DIR", str(tmp_path))
    monkeypatch.setenv("B2B_REPORTING_TIMEZONE", "America/New_York")
    assert resolve_night(None, datetime(2026, 11, 26, 9, 0, tzinfo=UTC)).as_of == date(2026, 11, 25)
    assert resolve_night(None, datetime(2026, 11, 26, 4, 0, tzinfo=UTC)).as_of == date(2026, 11, 24)


def test_an_invalid_setting_fails_the_night_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_HOME", str(tmp_path))
    (tmp_path / "b2b.yml").write_text("reporting_currency: euro\n", encoding="utf-8")
    with pytest.raises(NightConfigError, match=r"b2b.yml: reporting_currency='EURO'"):
        resolve_night({"as_of_date": "2026-11-25", "source_dir": str(tmp_path)}, None)
