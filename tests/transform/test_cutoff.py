"""The as-of cutoff has one definition, `b2b_pipeline.night.cutoff`: the dbt macros and the gate's
`{cutoff}` placeholder render the same instant, in a session whose time zone is not UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.night import Night, cutoff
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
def test_cutoff_is_the_next_day_at_midnight_utc(as_of: date, expected: datetime) -> None:
    assert cutoff(as_of) == expected
    assert Night(as_of, Path(".")).cutoff == expected


@pytest.mark.integration
@pytest.mark.parametrize("as_of", DAYS, ids=str)
def test_dbt_and_the_gate_render_the_same_cutoff(embedded_admin_dsn: str, as_of: date, tmp_path: Path) -> None:
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
