"""The dbt marts against the hand-computed cases and the independent reference computation.

Each case drop (and a generated company) is loaded by the real loader into a real
PostgreSQL, built by a real `dbt build` for each as-of date, and every mart read
back must equal, row by row, both the numbers worked out by hand in the case's
`expected.yaml` and `reference.compute_marts()` of the same drop, which is a
plain pandas computation of docs/metrics.md written without looking at the SQL.
A run's `settings:` (reporting_currency, fx_base_currency, reporting_timezone,
sales_pipelines) override the dbt vars of `night_vars()` and are passed to
compute_marts alike.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.generate import generate_company
from b2b_pipeline.transform import night_vars, run_dbt

from .compare import MART_NAMES, account_key_map_from_dim_accounts, assert_marts_equal
from .reference import compute_marts
from .test_reference import CASES, CASES_DIR, expected_frames, load_expected, run_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def build(dsn: str, as_of: dt.date, tmp_path: Path, settings: dict | None = None) -> None:
    """`dbt build` for the night of `as_of`; `settings` (reporting settings) override night_vars()'s. A run
    with settings is a `dbt run`: its marts are compared whole below, and the project's dbt tests under
    other settings are `tests/marts/test_settings_rebuild.py`'s (each invocation with new vars parses the
    project in full, so every one saved counts)."""
    result = run_dbt(
        ["run" if settings else "build"],
        dsn=dsn,
        vars=night_vars(as_of) | (settings or {}),
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )
    assert result.success, [f"{n.unique_id}: {n.message}" for n in result.failed_nodes]


def read_marts(dsn: str) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The candidate marts as frames, and the map from dbt's account_key to the reference's."""
    frames: dict[str, pd.DataFrame] = {}
    with psycopg.connect(dsn) as conn:
        for mart in MART_NAMES:
            cur = conn.execute(f"select * from marts__candidate.{mart}")
            frames[mart] = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description], dtype=object)
        cur = conn.execute("select account_key, crm_account_id, billing_customer_ids from core__candidate.dim_accounts")
        accounts = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description], dtype=object)
    return frames, account_key_map_from_dim_accounts(accounts)


def check(
    dsn: str,
    drop: Path,
    as_of: dt.date,
    tmp_path: Path,
    expected: dict[str, pd.DataFrame] | None,
    settings: dict | None = None,
) -> None:
    settings = settings or {}
    build(dsn, as_of, tmp_path, settings)
    actual, key_map = read_marts(dsn)
    assert_marts_equal(actual, compute_marts(drop, as_of, **settings), account_key_map=key_map)
    if expected:
        assert_marts_equal({m: actual[m] for m in expected}, expected, account_key_map=key_map)


@pytest.mark.parametrize("case", CASES)
def test_hand_computed_cases(warehouse: str, tmp_path: Path, case: str) -> None:
    drop = CASES_DIR / case
    load_drop(warehouse, drop)
    runs = load_expected(case)["runs"]
    # the latest night first, then an earlier one: re-running an old day gives that day's numbers
    for run in sorted(runs, key=lambda r: r["as_of"], reverse=True):
        as_of = dt.date.fromisoformat(str(run["as_of"]))
        check(warehouse, drop, as_of, tmp_path, expected_frames(run), run_settings(run))


def test_generated_company_matches_the_reference(warehouse: str, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    generate_company(drop, seed=11, accounts=150, start=dt.date(2025, 1, 1), end=dt.date(2026, 6, 30), error_rate=0.002)
    load_drop(warehouse, drop)
    for as_of in (dt.date(2026, 6, 30), dt.date(2025, 12, 31)):
        check(warehouse, drop, as_of, tmp_path, None)
