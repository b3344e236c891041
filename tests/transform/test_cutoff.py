"""The as-of cutoff has one definition, `b2b_pipeline.night.cutoff`: the dbt macros and the gate's
`{cutoff}` placeholder render the same instant, in a session whose time zone is not UTC, for the
default reporting time zone (UTC) and for another one (the setting `reporting_timezone`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.night import Night, cutoff, scheduled_as_of
from b2b_pipeline.quality.gate import VALIDATED_SCHEMAS, _placeholder_values
from b2b_pipeline.transform.dbt_runner import night_vars, run_dbt

DAYS = [date(2026, 12, 31), date(2028, 2, 29)]  # a year's end, a leap day
MACROS = "select {{ cutoff() }} as cutoff, {{ as_of_date() }} as as_of, {{ as_of_month() }} as as_of_month"


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2026, 11, 25), datetime(2026, 11, 26, tzinfo=UTC)),
        (date(2026, 12, 31), datetime(2027, 1, 1, tzinfo=UTC)),
        (date(2028, 2, 28), datetime(2028, 2, 29, tzinfo=UTC)),
    ],
)
def test_cutoff_is_the_next_day_at_midnight_utc(
    as_of: date, expected: datetime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("B2B_HOME", str(tmp_path))
    monkeypatch.delenv("B2B_REPORTING_TIMEZONE", raising=False)
    assert cutoff(as_of) == expected
    assert Night(as_of, Path(".")).cutoff == expected


@pytest.mark.parametrize(
    ("zone", "as_of", "expected"),
    [
        # the next day's midnight in Moscow (UTC+3, no daylight saving) is 21:00 UTC of the as-of day
        ("Europe/Moscow", date(2026, 1, 31), datetime(2026, 1, 31, 21, tzinfo=UTC)),
        # New York's midnight is 05:00 UTC in winter and 04:00 UTC in summer
        ("America/New_York", date(2026, 1, 31), datetime(2026, 2, 1, 5, tzinfo=UTC)),
        ("America/New_York", date(2026, 7, 31), datetime(2026, 8, 1, 4, tzinfo=UTC)),
    ],
)
def test_cutoff_is_midnight_of_the_reporting_time_zone(
    zone: str, as_of: date, expected: datetime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert cutoff(as_of, zone) == expected
    monkeypatch.setenv("B2B_HOME", str(tmp_path))
    monkeypatch.setenv("B2B_REPORTING_TIMEZONE", zone)
    assert Night(as_of, Path(".")).cutoff == expected


@pytest.mark.parametrize(
    ("zone", "end", "as_of"),
    [
        ("UTC", datetime(2026, 2, 1, 2, tzinfo=UTC), date(2026, 1, 31)),
        # 02:00 in Moscow on 1 Feb is 23:00 UTC on 31 Jan: the Moscow day 31 Jan is over
        ("Europe/Moscow", datetime(2026, 1, 31, 23, tzinfo=UTC), date(2026, 1, 31)),
        # 02:00 UTC on 1 Feb is still 31 Jan in New York: its last complete day is 30 Jan
        ("America/New_York", datetime(2026, 2, 1, 2, tzinfo=UTC), date(2026, 1, 30)),
    ],
)
def test_a_scheduled_night_gets_the_last_day_over_in_the_reporting_time_zone(
    zone: str, end: datetime, as_of: date
) -> None:
    assert scheduled_as_of(end, zone) == as_of


@pytest.mark.integration
@pytest.mark.parametrize(
    ("as_of", "zone"), [*((day, "UTC") for day in DAYS), (date(2026, 1, 31), "Europe/Moscow")], ids=str
)
def test_dbt_and_the_gate_render_the_same_cutoff(
    embedded_admin_dsn: str, as_of: date, zone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_REPORTING_TIMEZONE", zone)  # read by night_vars and the gate's cutoff alike
    compiled = run_dbt(
        ["compile", "--inline", MACROS],
        dsn=embedded_admin_dsn,
        vars=night_vars(as_of),
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )
    query = compiled.raw.results[0].node.compiled_code
    gate_cutoff = _placeholder_values(as_of, 0, 0, VALIDATED_SCHEMAS, "core")["cutoff"]
    with psycopg.connect(embedded_admin_dsn) as conn:
        conn.execute("set timezone = 'Asia/Vladivostok'")  # neither side may depend on it
        dbt_cutoff, dbt_as_of, dbt_month = conn.execute(query).fetchone()
        (gate_value,) = conn.execute(f"select {gate_cutoff}").fetchone()
    assert dbt_cutoff == gate_value == cutoff(as_of)
    assert (dbt_as_of, dbt_month) == (as_of, as_of.replace(day=1))
