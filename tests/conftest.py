"""Shared fixtures: real PostgreSQL warehouses, each test in a fresh database dropped afterwards.

Integration tests run against the embedded PostgreSQL (always). When
`B2B_WAREHOUSE_DSN` is set (CI sets it to the PostgreSQL 15 server on
127.0.0.1:5432), the tests marked `both_backends` run against that server too:
the ones where the server itself matters (connecting over TCP, COPY, the raw
landing, the whole dbt build and gate on the oldest PostgreSQL we support).
Everything else runs once, so that nothing in `make test` runs twice for no
new answer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.generate import generate_company
from b2b_pipeline.warehouse import embedded_server, with_database
from fingerprint import fingerprint  # tests/fingerprint.py
from nights import AS_OF, COMPANY, ReferenceNight, b2b_run  # tests/nights.py


def _backends() -> list[str]:
    return ["embedded", "server"] if os.environ.get("B2B_WAREHOUSE_DSN") else ["embedded"]


# The suite runs on several workers (pytest-xdist, `-n auto --dist loadgroup` in pyproject.toml); each
# worker has its own embedded server. The tests that share the session's reference night are one group, so
# that one worker builds it once; and the longest tests are handed out first, so that no worker is left
# with a long test at the end while the other waits.
SHARED_NIGHT = "reference_night"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The server variant only for the tests marked `both_backends` (see the module's doc); the tests of the
    reference night in one xdist group; the group and the slow tests first."""

    def once(item: pytest.Item) -> bool:
        callspec = getattr(item, "callspec", None)
        return (
            callspec is not None
            and callspec.params.get("admin_dsn") == "server"
            and item.get_closest_marker("both_backends") is None
        )

    dropped = [item for item in items if once(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not once(item)]

    for item in items:
        if SHARED_NIGHT in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(SHARED_NIGHT))

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("xdist_group") is not None:
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=order)  # stable: within each kind, the order of the files


@pytest.fixture(scope="session")
def embedded_admin_dsn() -> Iterator[str]:
    """An embedded PostgreSQL for the session, outside pytest's rotating temporary folders,
    set up as `b2b` sets up its embedded warehouse."""
    root = Path(tempfile.mkdtemp(prefix="b2b-test-pg-"))
    server = embedded_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", params=_backends())
def admin_dsn(request: pytest.FixtureRequest) -> str:
    """A superuser URL of one of the test servers."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_admin_dsn")
    return os.environ["B2B_WAREHOUSE_DSN"]


@pytest.fixture
def warehouse(admin_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a fresh database on the test server; `B2B_WAREHOUSE_DSN` points at it for the test."""
    name = f"b2b_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = with_database(admin_dsn, name)
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", dsn)
    try:
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def b2b_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "b2b_home"
    monkeypatch.setenv("B2B_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def reference_night(embedded_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceNight]:
    """The company of `nights.COMPANY` and its first night through `b2b run` on a database of the embedded
    server, once per session: the marts that the whole-night tests of the DAG (`b2b run` again, the night
    under Celery workers) compare theirs with. Tests may run more nights on its warehouse; they copy its drop
    before adding to it."""
    root = tmp_path_factory.mktemp("reference-night")
    drop, home = root / "drop", root / "home"
    generate_company(drop, **COMPANY)
    name = f"b2b_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(embedded_admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = with_database(embedded_admin_dsn, name)
    try:
        run = b2b_run(home, dsn, AS_OF, drop)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield ReferenceNight(drop=drop, home=home, dsn=dsn, run=run, marts=fingerprint(dsn))
    finally:
        with psycopg.connect(embedded_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
