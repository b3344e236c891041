"""Fault suite, whole nights: killed at each task boundary, a warehouse that is not there.

Each kill is the failpoint `B2B_FAULT_KILL_AT=<task id>`: the `b2b run` process kills itself with
SIGKILL as that task starts, as a crash or an OOM kill there would.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.generate import generate_company
from b2b_pipeline.warehouse import with_database

pytestmark = [pytest.mark.integration]

AS_OF = dt.date(2026, 3, 31)
B2B = str(Path(sys.executable).with_name("b2b"))
# the task boundaries a crash is tried at, in the night's order: the load, the dbt build, the
# gate, the publish and the report after it
KILL_POINTS = ("extract_billing", "dbt.dbt_producer_watcher", "quality_gate", "publish", "report")


def b2b_run(home: Path, dsn: str, drop: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "B2B_HOME": str(home), "B2B_WAREHOUSE_DSN": dsn, "COLUMNS": "200", **extra_env}
    return subprocess.run(
        [B2B, "run", "--date", AS_OF.isoformat(), "--source-dir", str(drop)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def fingerprint(dsn: str) -> dict[str, str]:
    """Each published mart: its row count and an md5 of its rows in a stable order."""
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'marts'")]
        return {
            table: conn.execute(
                sql.SQL(
                    "select count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' order by t::text)), '')"
                    " from {} t"
                ).format(sql.Identifier("marts", table))
            ).fetchone()[0]
            for table in sorted(tables)
        }


@pytest.mark.slow
def test_a_night_killed_at_each_task_boundary_converges(warehouse: str, admin_dsn: str, tmp_path: Path) -> None:
    """`kill -9` as each of extract, dbt, gate, publish and report starts, one run after another on
    one warehouse and home: each killed run ends by SIGKILL, the next is never blocked by the lock
    the killed one held, and the night that finally completes publishes exactly the marts of an
    uninterrupted night on a fresh warehouse."""
    if "host=/" not in warehouse:  # whole nights: once, on the embedded warehouse, is enough
        pytest.skip("whole nights are exercised on the embedded warehouse")
    drop = tmp_path / "drop"
    generate_company(drop, seed=11, accounts=40, start=dt.date(2025, 10, 1), end=AS_OF)

    reference_db = f"b2b_test_ref_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(reference_db)))
    try:
        reference_dsn = with_database(admin_dsn, reference_db)
        clean = b2b_run(tmp_path / "reference_home", reference_dsn, drop)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        expected = fingerprint(reference_dsn)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(reference_db)))

    home = tmp_path / "home"
    for task in KILL_POINTS:
        started = time.monotonic()
        killed = b2b_run(home, warehouse, drop, B2B_FAULT_KILL_AT=task)
        assert killed.returncode == -9, f"{task}: {killed.returncode}\n{killed.stdout}\n{killed.stderr}"
        assert "Waiting" not in killed.stderr, task  # the killed run before it left no lock behind
        assert time.monotonic() - started < 600
    final = b2b_run(home, warehouse, drop)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "Published" in final.stdout
    assert fingerprint(warehouse) == expected


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


@pytest.mark.slow
def test_the_warehouse_going_away_mid_night_fails_it_and_the_next_night_publishes(
    warehouse: str, admin_dsn: str, tmp_path: Path
) -> None:
    """Every connection to the warehouse is cut (for three seconds) while dbt builds: the night exits
    1 with its cause on one line and publishes nothing; the next run of the night publishes."""
    if "host=/" not in warehouse:
        pytest.skip("whole nights are exercised on the embedded warehouse")
    drop = tmp_path / "drop"
    generate_company(drop, seed=12, accounts=30, start=dt.date(2025, 12, 1), end=AS_OF)
    home = tmp_path / "home"
    night = night_in_background(home, warehouse, drop)
    database = warehouse.rsplit("/", 1)[1].split("?")[0]
    try:
        with psycopg.connect(warehouse) as admin:  # one transaction: it holds a lock until the end
            extracted: set[str] = set()
            for line in night.stdout:  # type: ignore[union-attr]
                extracted |= {t for t in ("extract_crm", "extract_billing") if t in line}
                if len(extracted) == 2:
                    break
            # dbt's first read of the deals waits behind this lock: the build is surely running
            # when the connections are cut
            admin.execute("lock table raw_files.deals in access exclusive mode")
            for line in night.stdout:  # type: ignore[union-attr]
                if "prepare_candidates" in line:
                    break
            time.sleep(2)
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
    assert night.returncode == 1, out + errors
    failed = [line for line in errors.splitlines() if line.startswith("Failed")]
    assert len(failed) == 1, errors
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select to_regnamespace('marts')").fetchone() == (None,)  # nothing published
    again = b2b_run(home, warehouse, drop)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Published" in again.stdout


def server_os_user(admin_dsn: str) -> str:
    with psycopg.connect(admin_dsn) as conn:
        data_directory = conn.execute("select current_setting('data_directory')").fetchone()[0]
    import pwd

    return pwd.getpwuid(Path(data_directory).stat().st_uid).pw_name


@pytest.mark.slow
def test_a_full_disk_fails_the_night_and_leaves_the_published_marts(
    warehouse: str, admin_dsn: str, tmp_path: Path
) -> None:
    """The warehouse's disk fills up during dbt (new tables go to a tablespace on a 2 MB tmpfs): the
    night exits 1 with "No space left on device" on one line, the published marts stay byte for
    byte; once space is back, the night publishes."""
    if "host=/" not in warehouse:
        pytest.skip("whole nights are exercised on the embedded warehouse")
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    drop = tmp_path / "drop"
    generate_company(drop, seed=13, accounts=30, start=dt.date(2025, 12, 1), end=AS_OF)
    home = tmp_path / "home"
    first = b2b_run(home, warehouse, drop)
    assert first.returncode == 0, first.stdout + first.stderr
    published = fingerprint(warehouse)

    disk = tmp_path / "tiny_disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(disk)], check=False)
    if mounted.returncode != 0:
        pytest.skip("this machine does not let a test mount a tmpfs")
    space = f"b2b_test_tiny_{uuid.uuid4().hex[:8]}"
    database = warehouse.rsplit("/", 1)[1].split("?")[0]
    try:
        subprocess.run(["chown", server_os_user(admin_dsn), str(disk)], check=True)
        disk.chmod(0o700)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("create tablespace {} location {}").format(sql.Identifier(space), sql.Literal(str(disk)))
            )
            admin.execute(
                sql.SQL("alter database {} set default_tablespace = {}").format(
                    sql.Identifier(database), sql.Identifier(space)
                )
            )
        full = b2b_run(home, warehouse, drop)
        assert full.returncode == 1, full.stdout + full.stderr
        failed = [line for line in full.stderr.splitlines() if line.startswith("Failed")]
        assert len(failed) == 1 and "No space left on device" in failed[0], full.stderr
        assert fingerprint(warehouse) == published

        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("alter database {} reset default_tablespace").format(sql.Identifier(database)))
        again = b2b_run(home, warehouse, drop)
        assert again.returncode == 0, again.stdout + again.stderr
        assert fingerprint(warehouse) == published  # the same night, the same marts
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
            admin.execute(sql.SQL("drop tablespace if exists {}").format(sql.Identifier(space)))
        subprocess.run(["umount", str(disk)], check=False)
