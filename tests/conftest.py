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

import functools
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.generate import generate_company
from b2b_pipeline.warehouse import embedded_server, with_database
from fingerprint import fingerprint  # tests/fingerprint.py
from nights import AS_OF, COMPANY, ReferenceNight, b2b_run  # tests/nights.py

# `dbt source freshness` (the gate's check of the sources) parses the dbt project in full for every new
# warehouse, 10 to 17 s: the suite's nights skip it, except the reference night (`reference_night`) and
# the freshness tests (tests/quality/test_gate.py), which turn it on.
os.environ.setdefault("B2B_SOURCE_FRESHNESS", "off")
# The suite's numbers are the defaults' (RUB, UTC, every pipeline): a developer's own settings in the
# environment do not reach it; the tests of other settings set them themselves.
for _setting in ("REPORTING_CURRENCY", "FX_BASE_CURRENCY", "REPORTING_TIMEZONE", "SALES_PIPELINES", "SETTINGS_FILE"):
    os.environ.pop(f"B2B_{_setting}", None)


def _backends() -> list[str]:
    return ["embedded", "server"] if os.environ.get("B2B_WAREHOUSE_DSN") else ["embedded"]


# The suite runs on several workers (pytest-xdist, `-n auto` in pyproject.toml), each with its own embedded
# server. A worker takes whole groups (the scheduler below): the tests of one file, so that a module's
# fixtures are built once, and across files the tests that take a session fixture that is expensive to
# make, so that one worker makes it once. Groups are handed out in the order of the collection, which puts
# the reference night's group first, then the files with slow tests, so that no worker is left with a long
# test at the end while the other waits. (xdist's own `--dist loadgroup` does not group on pytest 9:
# pytest-dev/pytest-xdist#1386.)
SHARED_SESSION_FIXTURES = ("reference_night", "shape_drop")
ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def test_group(path: str) -> str:
    """The group of the tests of file `path` (relative to the repository): the first shared session
    fixture a function of it takes as a parameter, else the file itself. `pytest_collection_modifyitems`
    checks the scan against the fixtures pytest resolved for each test."""
    text = (ROOT / path).read_text(encoding="utf-8") if (ROOT / path).is_file() else ""
    parameters = " ".join(re.findall(r"\bdef\s+\w+\s*\(([^)]*)\)", text))  # of every function, docstrings aside
    shared = [name for name in SHARED_SESSION_FIXTURES if re.search(rf"\b{name}\b", parameters)]
    return shared[0] if shared else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduler, its scope being the test's group (with `--dist loadscope`, the default
    here; another `--dist` on the command line keeps xdist's own scheduler)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid.split("::", 1)[0])

    return ByGroup(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The server variant only for the tests marked `both_backends` (see the module's doc); the groups in
    the order above."""

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

    def path(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    groups = {item.nodeid: test_group(path(item)) for item in items}
    for item in items:  # the text scan above must agree with what pytest resolved (fixtures of fixtures too)
        taken = [name for name in SHARED_SESSION_FIXTURES if name in getattr(item, "fixturenames", ())]
        if taken and groups[item.nodeid] != taken[0]:
            raise pytest.UsageError(
                f"{item.nodeid} takes the session fixture {taken[0]} but its file is grouped as "
                f"{groups[item.nodeid]!r}: name the fixture as a parameter of a test of the file"
            )
    slow_groups = {groups[item.nodeid] for item in items if item.get_closest_marker("slow") is not None}

    def order(item: pytest.Item) -> int:
        group = groups[item.nodeid]
        return 0 if group == SHARED_SESSION_FIXTURES[0] else 1 if group in slow_groups else 2

    items.sort(key=order)  # stable: within each kind, the order of the collection


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
        run = b2b_run(home, dsn, AS_OF, drop, B2B_SOURCE_FRESHNESS="block")  # the night as shipped
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield ReferenceNight(drop=drop, home=home, dsn=dsn, run=run, marts=fingerprint(dsn))
    finally:
        with psycopg.connect(embedded_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
