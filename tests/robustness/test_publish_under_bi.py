"""Fault suite, BI during publish: analysts query every mart while nights publish.

The candidates are built as the night builds them (schemas `core__candidate` and
`marts__candidate`, every mart of the dbt project by name), each table holding its night's
number on every row, so that a reader can tell a half-built or mixed mart from a whole one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.publish import PublishError, publish
from b2b_pipeline.warehouse import connect

pytestmark = pytest.mark.integration

MARTS = sorted(p.stem for p in (dbt_project_dir() / "models" / "marts").glob("*.sql"))
ROWS = 500


def build_candidates(dsn: str, night: int) -> None:
    """Every mart (and three core tables), `ROWS` rows of night `night` each, built row by row in
    separate statements of one transaction as a slow build would."""
    with connect(dsn) as conn:
        for schema in ("core__candidate", "marts__candidate"):
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        tables = [("core__candidate", t) for t in ("fct_deals", "dim_accounts", "dim_contacts")]
        tables += [("marts__candidate", m) for m in MARTS]
        for schema, table in tables:
            conn.execute(
                sql.SQL("create table {} as select %s::int as night, g as i from generate_series(1, %s) g").format(
                    sql.Identifier(schema, table)
                ),
                (night, ROWS),
            )


@pytest.fixture
def analyst(warehouse: str) -> Iterator[str]:
    """A login role in bi_reader, as an analyst's BI tool connects (dropped afterwards)."""
    name = f"b2b_test_bi_{uuid.uuid4().hex[:8]}"
    build_candidates(warehouse, 0)
    publish(warehouse)  # bi_reader exists from the first publish on
    with connect(warehouse, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login in role bi_reader").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with connect(warehouse, autocommit=True) as conn:
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where usename = %s or "
                "application_name = 'b2b-test-bi'",
                (name,),
            )
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


def bi_session(dsn: str, role: str) -> psycopg.Connection:
    return connect(dsn, autocommit=True, application_name="b2b-test-bi", user=role)


def test_bi_sessions_see_whole_nights_while_nights_publish(warehouse: str, analyst: str) -> None:
    """Three BI sessions query every mart in a loop while five nights publish: no query errors, and
    every answer is one whole night (one night number, all rows), never a half-built or mixed mart."""
    stop = threading.Event()
    errors: list[str] = []
    answers: list[tuple[str, int, int, int]] = []

    def read() -> None:
        with bi_session(warehouse, analyst) as conn:
            while not stop.is_set():
                for mart in MARTS:
                    try:
                        row = conn.execute(
                            sql.SQL("select min(night), max(night), count(*) from {}").format(
                                sql.Identifier("marts", mart)
                            )
                        ).fetchone()
                    except psycopg.Error as exc:
                        errors.append(f"{mart}: {exc}")
                        continue
                    answers.append((mart, *row))  # type: ignore[misc]

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for night in range(1, 6):
            build_candidates(warehouse, night)
            result = publish(warehouse, wait_seconds=30)
            assert result.cancelled == ()  # short queries never needed cancelling
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    assert errors == []
    assert len(answers) > 5 * len(MARTS)
    mixed = [a for a in answers if a[1] != a[2] or a[3] != ROWS]
    assert mixed == []
    assert {a[1] for a in answers} >= {0, 5}  # the readers saw the nights change


def long_query(dsn: str, role: str, started: threading.Event, outcome: list[str]) -> None:
    """A BI query reading marts.sales_funnel for a minute (pg_sleep per row)."""
    with bi_session(dsn, role) as conn:
        try:
            started.set()
            conn.execute("select count(*) from marts.sales_funnel where pg_sleep(0.2) is not null")
            outcome.append("finished")
        except psycopg.errors.QueryCanceled:
            outcome.append("cancelled")
        except psycopg.Error as exc:
            outcome.append(f"error: {exc}")


def test_a_long_bi_query_is_waited_for_then_cancelled_and_the_night_publishes(warehouse: str, analyst: str) -> None:
    """A BI query still reading a mart published two nights ago holds up the swap: the publish waits
    its bound, retrying, then cancels that query (named in the result) and publishes the night."""
    started = threading.Event()
    outcome: list[str] = []
    reader = threading.Thread(target=long_query, args=(warehouse, analyst, started, outcome))
    reader.start()
    started.wait(10)
    time.sleep(0.5)  # the query is running and holds its table
    build_candidates(warehouse, 1)
    publish(warehouse, wait_seconds=2)  # night 1: night 0 moves to marts__previous, the query reads it there
    build_candidates(warehouse, 2)
    clock = time.monotonic()
    result = publish(warehouse, wait_seconds=2)  # night 2 drops marts__previous: the query is in the way
    waited = time.monotonic() - clock
    reader.join(timeout=30)
    assert outcome == ["cancelled"]
    assert len(result.cancelled) == 1 and "pg_sleep" in result.cancelled[0] and analyst in result.cancelled[0]
    assert 2 <= waited < 20  # it waited the bound, then did not wait for the query to end
    with connect(warehouse) as conn:
        assert conn.execute("select distinct night from marts.sales_funnel").fetchall() == [(2,)]


def test_without_cancelling_a_long_bi_query_fails_the_night_naming_it(warehouse: str, analyst: str) -> None:
    """With cancelling switched off, the swap gives up after its bound: PublishError naming the
    reader in the way, the published marts unchanged, the BI query untouched."""
    started = threading.Event()
    outcome: list[str] = []
    build_candidates(warehouse, 1)
    publish(warehouse)
    reader = threading.Thread(target=long_query, args=(warehouse, analyst, started, outcome))
    reader.start()
    started.wait(10)
    time.sleep(0.5)
    build_candidates(warehouse, 2)
    publish(warehouse, wait_seconds=1)  # night 1 moves to marts__previous, still read
    build_candidates(warehouse, 3)
    with pytest.raises(PublishError, match=r"readers still hold the published tables: pid \d+, user " + analyst):
        publish(warehouse, wait_seconds=2, cancel_readers=False)
    with connect(warehouse) as conn:
        assert conn.execute("select distinct night from marts.sales_funnel").fetchall() == [(2,)]
        conn.execute("select pg_cancel_backend(pid) from pg_stat_activity where application_name = 'b2b-test-bi'")
    reader.join(timeout=30)
    assert outcome == ["cancelled"]  # by the test's own clean-up, not by the publish
