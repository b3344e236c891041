"""Write-audit-publish on a real PostgreSQL: the swap is atomic, grants survive it, bi_reader reads only marts."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.publish import PublishError, prepare_candidates, publish
from b2b_pipeline.warehouse import connect

pytestmark = pytest.mark.integration


def build_candidates(dsn: str, night: int) -> None:
    with connect(dsn) as conn:
        conn.execute("create schema if not exists raw_files")
        conn.execute("create table if not exists raw_files.deals (deal_id text)")
        for schema in ("core__candidate", "marts__candidate"):
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        conn.execute("create table core__candidate.dim_contacts (contact_id text, full_name text)")
        conn.execute("create table core__candidate.fct_deals (deal_id text)")
        conn.execute("create table marts__candidate.revenue_monthly (month date, revenue numeric)")
        conn.execute("insert into marts__candidate.revenue_monthly values ('2026-01-01', %s)", (night,))


def revenue(dsn: str) -> list[tuple]:
    with connect(dsn) as conn:
        return conn.execute("select revenue from marts.revenue_monthly").fetchall()


def test_publish_swaps_candidates_in_and_keeps_the_previous_night(warehouse: str) -> None:
    build_candidates(warehouse, 1)
    publish(warehouse)
    assert revenue(warehouse) == [(1,)]
    build_candidates(warehouse, 2)
    result = publish(warehouse)
    assert revenue(warehouse) == [(2,)]
    assert result.tables == 3
    with connect(warehouse) as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace where nspname like '%%__%%'")}
        assert {"marts__previous", "core__previous"} <= schemas
        assert not {"marts__candidate", "core__candidate"} & schemas


def test_a_missing_candidate_publishes_nothing(warehouse: str) -> None:
    build_candidates(warehouse, 1)
    publish(warehouse)
    with connect(warehouse) as conn:
        conn.execute("create schema marts__candidate")
        conn.execute("create table marts__candidate.revenue_monthly (month date, revenue numeric)")
    with pytest.raises(PublishError, match="core__candidate"):
        publish(warehouse)
    assert revenue(warehouse) == [(1,)]
    prepare_candidates(warehouse)
    with connect(warehouse) as conn:
        assert conn.execute("select count(*) from pg_namespace where nspname like '%%candidate'").fetchone() == (0,)


def test_bi_reader_reads_published_marts_only_and_cannot_write(warehouse: str) -> None:
    build_candidates(warehouse, 1)
    publish(warehouse)
    build_candidates(warehouse, 2)
    publish(warehouse)  # grants must survive the swap
    with connect(warehouse, autocommit=True) as conn:
        conn.execute("drop role if exists b2b_test_analyst")
        conn.execute("create role b2b_test_analyst login in role bi_reader")
    try:
        with connect(warehouse) as conn:
            conn.execute("set role b2b_test_analyst")
            assert conn.execute("select revenue from marts.revenue_monthly").fetchall() == [(2,)]
            assert conn.execute("select count(*) from core.fct_deals").fetchone() == (0,)
            for forbidden in (
                "select * from raw_files.deals",
                "select * from core.dim_contacts",
                "select * from marts__previous.revenue_monthly",
                "insert into marts.revenue_monthly values ('2026-02-01', 1)",
                "create table marts.mine (x int)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(forbidden)
    finally:
        with connect(warehouse, autocommit=True) as conn:
            conn.execute("drop owned by b2b_test_analyst")
            conn.execute("drop role b2b_test_analyst")
