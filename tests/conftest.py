"""Shared fixtures: real PostgreSQL warehouses, each test in a fresh database dropped afterwards.

Integration tests run against the embedded PostgreSQL (always) and, when
`B2B_WAREHOUSE_DSN` is set, against that server too (CI sets it to the
PostgreSQL 15 server on 127.0.0.1:5432).
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

from b2b_pipeline.warehouse import embedded_server, with_database


def _backends() -> list[str]:
    return ["embedded", "server"] if os.environ.get("B2B_WAREHOUSE_DSN") else ["embedded"]


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
