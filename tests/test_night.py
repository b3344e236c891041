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
