"""Fault suite, whole nights: killed at each task boundary, a warehouse that is missing, goes away or fills up.

Each kill is the failpoint `B2B_FAULT_KILL_AT=<task id>`: the `b2b run` process kills itself with
SIGKILL as that task starts, as a crash or an OOM kill there would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

import nights  # tests/nights.py
from b2b_pipeline.generate import generate_company
from b2b_pipeline.warehouse import with_database
from fingerprint import fingerprint  # tests/fingerprint.py

pytestmark = [pytest.mark.integration]

AS_OF = dt.date(2026, 3, 31)
B2B = str(Path(sys.executable).with_name("b2b"))
# the task boundaries a crash is tried at, in the night's order: the load, the dbt build, the
# gate and the publish (after it, the summary and the report read the published marts only)
KILL_POINTS = ("extract_billing", "dbt.dbt_producer_watcher", "quality_gate", "publish")


def b2b_run(home: Path, dsn: str, drop: Path, **extra_env: str) -> subprocess.CompletedProcess:
    """`b2b run` of this suite's night (nights.b2b_run), with wide output so that a cause stays on one line."""
    return nights.b2b_run(home, dsn, AS_OF, drop, timeout=900, COLUMNS="200", **extra_env)


@pytest.mark.slow
def test_a_night_survives_kills_a_lost_warehouse_and_a_full_disk(
    warehouse: str, admin_dsn: str, tmp_path: Path
) -> None:
    """One night of one company, on one warehouse and home, through every fault in turn; the marts
    are compared with those of an uninterrupted night on a fresh warehouse (the reference).

    1. `kill -9` as each of extract, dbt, the gate and publish starts: each run ends by SIGKILL,
       the next is never kept waiting by the lock the killed one held, nothing is published.
    2. Every connection to the warehouse cut while dbt builds: exit 1, the cause on one line,
       nothing published.
    3. The night then completes and publishes exactly the reference marts.
    4. The disk fills up during dbt (new tables go to a tablespace on a 128 KB tmpfs; root only):
       exit 1 with "No space left on device" on one line, the published marts byte for byte; with
       space back, the night publishes the same marts again.
    """
    if "host=/" not in warehouse:  # whole nights: once, on the embedded warehouse, is enough
        pytest.skip("whole nights are exercised on the embedded warehouse")
    drop = tmp_path / "drop"
    generate_company(drop, seed=11, accounts=40, start=dt.date(2025, 10, 1), end=AS_OF)
    expected = reference_marts(admin_dsn, tmp_path / "reference_home", drop)
    home = tmp_path / "home"

    for task in KILL_POINTS:
        killed = b2b_run(home, warehouse, drop, B2B_FAULT_KILL_AT=task)
        assert killed.returncode == -9, f"{task}: {killed.returncode}\n{killed.stdout}\n{killed.stderr}"
        assert "Waiting" not in killed.stderr, task  # the killed run before it left no lock behind
    assert fingerprint(warehouse) == {}  # killed as publish started: nothing published

    cut = warehouse_cut_during_dbt(home, warehouse, drop)
    assert cut.returncode == 1, cut.stdout + cut.stderr
    failed = [line for line in cut.stderr.splitlines() if line.startswith("Failed")]
    assert len(failed) == 1, cut.stderr
    assert fingerprint(warehouse) == {}

    final = b2b_run(home, warehouse, drop)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "Published" in final.stdout
    assert fingerprint(warehouse) == expected

    if os.geteuid() != 0:
        return  # mounting a small tmpfs needs root
    with tiny_default_tablespace(admin_dsn, warehouse) as mounted:
        if mounted:
            full = b2b_run(home, warehouse, drop)
            assert full.returncode == 1, full.stdout + full.stderr
            failed = [line for line in full.stderr.splitlines() if line.startswith("Failed")]
            assert len(failed) == 1 and "No space left on device" in failed[0], full.stderr
            assert fingerprint(warehouse) == expected
    if mounted:
        again = b2b_run(home, warehouse, drop)
        assert again.returncode == 0, again.stdout + again.stderr
        assert fingerprint(warehouse) == expected


def reference_marts(admin_dsn: str, home: Path, drop: Path) -> dict[str, str]:
    """The marts of the night run once, without a fault, on a database of its own."""
    name = f"b2b_test_ref_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        dsn = with_database(admin_dsn, name)
        clean = b2b_run(home, dsn, drop)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        return fingerprint(dsn)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def warehouse_cut_during_dbt(home: Path, warehouse: str, drop: Path) -> subprocess.CompletedProcess:
    """Run the night, and cut every connection to its database for 3 s while dbt builds: dbt's read
    of the deals (after the extract tasks) is held behind a lock until dbt waits for it, then the
    connections are cut."""
    night = night_in_background(home, warehouse, drop)
    database = urlsplit(warehouse).path.lstrip("/")
    try:
        with psycopg.connect(warehouse) as admin:  # one transaction: its lock lasts until the end
            extracted: set[str] = set()
            for line in night.stdout:  # type: ignore[union-attr]
                extracted |= {t for t in ("extract_crm", "extract_billing") if t in line}
                if len(extracted) == 2:  # the loads are over: the next to read the deals is dbt
                    break
            admin.execute("lock table raw_files.deals in access exclusive mode")
            waiting_until = time.monotonic() + 300
            waiters = 0
            while not waiters and time.monotonic() < waiting_until:
                waiters = admin.execute(
                    "select count(*) from pg_locks where relation = 'raw_files.deals'::regclass and not granted"
                ).fetchone()[0]
                time.sleep(0.2)
            assert waiters, "dbt never read the deals"
            cut_until = time.monotonic() + 3
            while time.monotonic() < cut_until:
                admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where datname = %s and pid <> pg_backend_pid()",
                    (database,),
                )
                time.sleep(0.1)
        out, errors = night.communicate(timeout=600)
    finally:
        if night.poll() is None:
            os.killpg(night.pid, 9)
            night.wait(timeout=60)
    return subprocess.CompletedProcess(night.args, night.returncode, out, errors)


@contextlib.contextmanager
def tiny_default_tablespace(admin_dsn: str, warehouse: str) -> Iterator[bool]:
    """New tables of the warehouse's database go to a tablespace on a 128 KB tmpfs for the block
    (False when no tmpfs can be mounted here); everything is put back afterwards."""
    disk = Path(tempfile.mkdtemp(prefix="b2b-tiny-disk-"))  # where the server's OS user can reach it
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], check=False).returncode != 0:
        disk.rmdir()
        yield False
        return
    space = f"b2b_test_tiny_{uuid.uuid4().hex[:8]}"
    database = sql.Identifier(urlsplit(warehouse).path.lstrip("/"))
    try:
        subprocess.run(["chown", server_os_user(admin_dsn), str(disk)], check=True)
        disk.chmod(0o700)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("create tablespace {} location {}").format(sql.Identifier(space), sql.Literal(str(disk)))
            )
            admin.execute(
                sql.SQL("alter database {} set default_tablespace = {}").format(database, sql.Identifier(space))
            )
        yield True
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("alter database {} reset default_tablespace").format(database))
        # the tables the failed night created there go (the next night builds them again), so that
        # the tablespace can be dropped
        with psycopg.connect(warehouse, autocommit=True) as conn:
            for schema, table in conn.execute(
                "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "join pg_tablespace t on t.oid = c.reltablespace where t.spcname = %s and c.relkind in ('r', 'm')",
                (space,),
            ).fetchall():
                conn.execute(sql.SQL("drop table if exists {} cascade").format(sql.Identifier(schema, table)))
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("drop tablespace if exists {}").format(sql.Identifier(space)))
        subprocess.run(["umount", str(disk)], check=False)
        disk.rmdir()


def night_in_background(home: Path, dsn: str, drop: Path) -> subprocess.Popen:
    env = {**os.environ, "B2B_HOME": str(home), "B2B_WAREHOUSE_DSN": dsn, "COLUMNS": "200"}
    return subprocess.Popen(
        [B2B, "run", "--date", AS_OF.isoformat(), "--source-dir", str(drop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def server_os_user(admin_dsn: str) -> str:
    with psycopg.connect(admin_dsn) as conn:
        data_directory = conn.execute("select current_setting('data_directory')").fetchone()[0]
    import pwd

    return pwd.getpwuid(Path(data_directory).stat().st_uid).pw_name


def test_a_missing_database_fails_in_seconds_with_the_cause(warehouse: str, tmp_path: Path) -> None:
    """`b2b run` against a database that does not exist: exit 1 within seconds (no retries), the
    cause on one line of the output; nothing of the night ran."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    missing = with_database(warehouse, "b2b_no_such_database")
    started = time.monotonic()
    done = b2b_run(tmp_path / "home", missing, drop)
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert seconds < 60
    failed = [line for line in done.stderr.splitlines() if line.startswith("Failed")]
    assert len(failed) == 1, done.stderr
    assert 'database "b2b_no_such_database" does not exist' in failed[0]
    assert "Night 2026-03-31 from" not in done.stdout


def test_an_unreachable_warehouse_fails_in_seconds_with_the_cause(tmp_path: Path) -> None:
    """`b2b run` against a port where no PostgreSQL listens: exit 1 within seconds, the cause
    (connection refused) on one line, the password of the URL nowhere in the output."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    started = time.monotonic()
    done = b2b_run(tmp_path / "home", "postgresql://postgres:s3cret-pw@127.0.0.1:1/warehouse", drop)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    failed = [line for line in done.stderr.splitlines() if line.startswith("Failed")]
    assert len(failed) == 1 and "cannot use the warehouse" in failed[0], done.stderr
    assert "refused" in failed[0].lower() or "connect" in failed[0].lower()
    assert "s3cret-pw" not in done.stdout + done.stderr
