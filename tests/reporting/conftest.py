"""Fixtures of the report tests: a warehouse with small published marts, and the report built on it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest

from .published_marts import create_core, create_marts, fill_core, fill_marts, write_gate

AS_OF = date(2026, 11, 25)


@pytest.fixture
def published(warehouse: str) -> str:
    """A fresh warehouse whose schema `marts` holds eight months through AS_OF, and whose schema `core` the
    rows of the previous month's same days (`published_marts.SAME_DAYS`)."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn)
        fill_marts(conn, AS_OF)
        create_core(conn)
        fill_core(conn, AS_OF)
    return warehouse


@pytest.fixture
def built_report(published: str, b2b_home: Path) -> Path:
    """The report of AS_OF, with a passed gate that warned twice."""
    from b2b_pipeline.reporting import build_report

    write_gate(b2b_home, AS_OF, passed=True, warnings=("late_files", "fx_rate_gap"))
    return build_report(published, AS_OF, b2b_home)
