"""Write-audit-publish on a real PostgreSQL: the swap is atomic, grants survive it, bi_reader reads only marts."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.publish import CARRIED_TABLES, PublishError, prepare_candidates, publish
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


def activities_night(dsn: str, schema: str) -> list[tuple]:
    with connect(dsn) as conn:
        return conn.execute(sql.SQL("select night from {}.fct_activities").format(sql.Identifier(schema))).fetchall()


def relations(dsn: str, schema: str) -> set[str]:
    with connect(dsn) as conn:
        rows = conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'v')",
            (schema,),
        ).fetchall()
    return {name for (name,) in rows}


def test_prepare_carries_the_patched_tables_over_and_drops_the_rest(warehouse: str) -> None:
    for night in (1, 2):
        build_candidates(warehouse, night)
        with connect(warehouse) as conn:
            conn.execute("create table core__candidate.fct_activities (night int)")
            conn.execute("insert into core__candidate.fct_activities values (%s)", (night,))
        publish(warehouse)
        with connect(warehouse) as conn:  # an analyst's view on each night's published fact
            conn.execute(f"create view public.activities_{night} as select * from core.fct_activities")
    # a night after two published ones starts from the star published the night before last: its
    # patched fact only, in the candidate schema; the published star is untouched
    prepare_candidates(warehouse)
    assert relations(warehouse, "core__candidate") == {"dim_contacts", "fct_activities"}
    assert activities_night(warehouse, "core__candidate") == [(1,)]
    assert relations(warehouse, "core") == {"dim_contacts", "fct_deals", "fct_activities"}
    assert activities_night(warehouse, "core") == [(2,)]
    with connect(warehouse) as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace where nspname like '%%\\_\\_%%'")}
    assert schemas == {"core__candidate", "marts__previous"}
    # the view that followed the carried fact is dropped rather than see it patched; a view on the
    # published fact stays
    with connect(warehouse) as conn:
        views = conn.execute("select to_regclass('public.activities_1'), to_regclass('public.activities_2')")
        assert views.fetchone() == (None, "activities_2")

    # that night is blocked: the next one keeps its candidate's patched fact (the newest state) and
    # drops what it rebuilds, views included
    with connect(warehouse) as conn:
        conn.execute("update core__candidate.fct_activities set night = 3")
        conn.execute("create table core__candidate.fct_deals (deal_id text)")
        conn.execute("create view core__candidate.open_deals as select * from core__candidate.fct_deals")
        conn.execute("create view public.inspected as select * from core__candidate.fct_activities")
        conn.execute("create schema marts__candidate")
        conn.execute("create table marts__candidate.revenue_monthly (month date, revenue numeric)")
    prepare_candidates(warehouse)
    assert relations(warehouse, "core__candidate") == {"dim_contacts", "fct_activities"}
    assert activities_night(warehouse, "core__candidate") == [(3,)]
    assert relations(warehouse, "marts__candidate") == set()
    with connect(warehouse) as conn:
        assert conn.execute("select to_regclass('public.inspected')").fetchone() == (None,)
    assert activities_night(warehouse, "core") == [(2,)]


def test_the_carried_tables_are_the_incremental_models_of_the_core_star() -> None:
    models = Path(dbt_project_dir()) / "models" / "core"
    incremental = {p.stem for p in models.glob("*.sql") if "materialized='incremental'" in p.read_text()}
    assert {"fct_activities", "fct_deal_stage_history", "dim_contacts"} <= incremental
    assert set(CARRIED_TABLES) == {"core"} and set(CARRIED_TABLES["core"]) == incremental
