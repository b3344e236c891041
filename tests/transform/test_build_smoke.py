"""Smoke test of a full build: a tiny hand-built company through `dbt build`, marts checked by hand.

The expected values are worked out from docs/metrics.md in tests/transform/tiny_company.py. The test
runs on every test server (the embedded PostgreSQL, reached by a unix-socket URL, and the server of
B2B_WAREHOUSE_DSN when set), in a fresh database whose time zone is deliberately not UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.transform import DbtError, DbtResult, night_vars, run_dbt

from . import tiny_company as tc
from .raw_layer import RawWriter, create_raw_tables

# both_backends: the server too (see tests/conftest.py)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.both_backends]

PRECISION = Decimal("0.000001")


def _month(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _num(value: Any) -> Any:
    return value.quantize(PRECISION) if isinstance(value, Decimal) else value


def _rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return [tuple(_num(v) for v in row) for row in conn.execute(query).fetchall()]


def _by_first(rows: list[tuple[Any, ...]]) -> dict[Any, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in rows}


def _expect(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_num(v) for v in values)


@pytest.fixture
def tiny_warehouse(warehouse: str) -> str:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        dbname = conn.info.dbname
        # marts must not depend on the session time zone
        conn.execute(sql.SQL("alter database {} set timezone = 'Asia/Vladivostok'").format(sql.Identifier(dbname)))
        create_raw_tables(conn)
        tc.load_tiny_company(RawWriter(conn))
    return warehouse


def _build(dsn: str, as_of: str | dt.date, tmp_path: Path) -> DbtResult:
    """`dbt build` of the night of `as_of`, straight into core and marts (no candidates to publish)."""
    return run_dbt(
        ["build"],
        dsn=dsn,
        vars=night_vars(as_of, candidates=False),
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )


def test_dbt_build_on_a_tiny_company(tiny_warehouse: str, tmp_path: Path) -> None:
    result = _build(tiny_warehouse, tc.AS_OF_DATE, tmp_path)
    assert result.success
    assert not result.failed_nodes
    assert not result.warned_nodes, [n.unique_id for n in result.warned_nodes]

    funnel = _rows(
        tiny_warehouse,
        "select cohort_month, stage_key, deals_reached, deals_reached_next, conversion_to_next "
        "from marts.sales_funnel order by cohort_month, stage_order",
    )
    assert len(funnel) == 3 * 7  # January to March 2026, seven stages each, zeros included
    funnel_by_key = {(row[0], row[1]): row[2:] for row in funnel}
    for (month, stage), values in tc.EXPECTED_FUNNEL.items():
        assert funnel_by_key[(_month(month), stage)] == _expect(values), (month, stage)

    performance = _by_first(
        _rows(
            tiny_warehouse,
            "select month, deals_won, deals_lost, win_rate, won_amount, avg_deal_size, avg_cycle_days, "
            "median_cycle_days from marts.sales_performance_monthly order by month",
        )
    )
    assert performance == {_month(m): _expect(v) for m, v in tc.EXPECTED_SALES_PERFORMANCE.items()}

    revenue = _by_first(
        _rows(
            tiny_warehouse,
            "select month, revenue, revenue_new_customers, new_customer_revenue_share, paying_customers "
            "from marts.revenue_monthly order by month",
        )
    )
    assert revenue == {_month(m): _expect(v) for m, v in tc.EXPECTED_REVENUE.items()}

    retention = _by_first(
        _rows(
            tiny_warehouse,
            "select month, customers_start, customers_end, customers_new, customers_churned, retention_rate, "
            "churn_rate from marts.retention_monthly order by month",
        )
    )
    assert retention == {_month(m): _expect(v) for m, v in tc.EXPECTED_RETENTION.items()}

    repeat = _by_first(
        _rows(
            tiny_warehouse,
            "select month, customers_with_purchase, customers_with_repeat_purchase, repeat_purchase_rate "
            "from marts.repeat_purchase_monthly order by month",
        )
    )
    assert repeat == {_month(m): _expect(v) for m, v in tc.EXPECTED_REPEAT_PURCHASE.items()}

    value = _rows(
        tiny_warehouse,
        "select account_name, weighted_open_pipeline, active_mrr, potential_contract_value, as_of_date "
        "from marts.customer_value",
    )
    assert {row[0]: row[1:4] for row in value} == {k: _expect(v) for k, v in tc.EXPECTED_CUSTOMER_VALUE.items()}
    assert {row[4] for row in value} == {dt.date(2026, 3, 15)}

    accounts = _rows(
        tiny_warehouse,
        "select account_name, crm_account_id, billing_customer_ids, match_method from core.dim_accounts",
    )
    assert {row[0]: (row[1], row[2], row[3]) for row in accounts} == tc.EXPECTED_MATCH_METHODS

    contacts = _rows(tiny_warehouse, "select * from core.dim_contacts")
    assert "Ivan@Alfa.ru" not in repr(contacts) and "123-45-67" not in repr(contacts)

    # Re-running an earlier day after a later one gives that day's numbers (incremental models kept).
    _build(tiny_warehouse, "2026-02-10", tmp_path)
    assert _rows(tiny_warehouse, "select month, revenue, paying_customers from marts.revenue_monthly order by 1") == [
        (dt.date(2026, 1, 1), Decimal(5000).quantize(PRECISION), 1),
        (dt.date(2026, 2, 1), Decimal(0).quantize(PRECISION), 0),
    ]
    assert _rows(tiny_warehouse, "select month, deals_won, deals_lost from marts.sales_performance_monthly") == [
        (dt.date(2026, 1, 1), 1, 0),
        (dt.date(2026, 2, 1), 1, 0),  # D1 closed 02-10; D3 closes on 02-20, after this cutoff
    ]


def test_failures_raise_dbt_error(tiny_warehouse: str, tmp_path: Path) -> None:
    with pytest.raises(DbtError) as caught:
        run_dbt(
            ["run", "--select", "stg_files__users"],
            dsn=tiny_warehouse,
            vars={"as_of_date": "yesterday"},
            target_path=tmp_path / "target",
            log_path=tmp_path / "logs",
        )
    assert "as_of_date" in str(caught.value)
    with pytest.raises(DbtError, match="2026-13-01"):
        _build(tiny_warehouse, "2026-13-01", tmp_path)
