"""The night under Airflow's production shape: a scheduler, a DAG processor, an API server, a triggerer and
two Celery workers as separate processes, a fresh PostgreSQL metadata database, Redis as the broker, the
warehouse from `AIRFLOW_CONN_B2B_WAREHOUSE`, every setting from `production_shape.celery_environment()`
(the compose file's own, see tests/test_docker_compose.py).

One test, because starting the shape is the expensive part:
1. a night triggered through the REST API, during whose dbt build the worker running it is killed with
   everything it started: the build is retried on the other worker and the night publishes the marts that
   the same night through `b2b run` published (`reference_night`), table for table, row for row (the
   killed worker is started again once the retry runs, as compose's `restart: always` would);
2. the build ran on both workers (its first try on the killed one, its retry on the other);
3. a second night that the quality gate blocks ends failed, with the published marts unchanged, its tasks
   spread over both workers (the killed one started again);
4. stopping the cluster leaves no process of it running.

It needs this machine's PostgreSQL server (`B2B_WAREHOUSE_DSN`, which `.ci/run` sets) and Redis on
127.0.0.1:6379; without them it skips, and in CI (`CI` set) it fails instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from airflow_cluster import AirflowCluster, free_port  # tests/orchestration/airflow_cluster.py
from psycopg import sql

from b2b_pipeline.config import dags_folder
from b2b_pipeline.orchestration.local_airflow import DAG_ID, logical_date_for
from b2b_pipeline.orchestration.production_shape import Deployment
from b2b_pipeline.transform.manifest import ensure_manifest
from b2b_pipeline.warehouse import with_database
from fingerprint import fingerprint  # tests/fingerprint.py
from nights import AS_OF, ReferenceNight, bad_night  # tests/nights.py

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS = ("127.0.0.1", 6379)
PRODUCER = "dbt.dbt_producer_watcher"
WORKERS = ("worker-1", "worker-2")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the production-shape test needs {reason}")
    pytest.skip(f"needs {reason}")


@pytest.fixture(scope="session")
def server() -> str:
    """The PostgreSQL server and Redis the shape needs; session-scoped so that a missing one skips the test
    before the (session-scoped) reference night is run for it."""
    dsn = os.environ.get("B2B_WAREHOUSE_DSN")
    if not dsn:
        _unavailable("a PostgreSQL server (B2B_WAREHOUSE_DSN)")
    try:
        socket.create_connection(REDIS, timeout=2).close()
    except OSError:
        _unavailable(f"Redis on {REDIS[0]}:{REDIS[1]}")
    return dsn


@pytest.fixture
def databases(server: str) -> Iterator[tuple[str, str]]:
    """A fresh metadata database and a fresh warehouse on the server, dropped afterwards."""
    names = [f"b2b_test_airflow_{uuid.uuid4().hex[:8]}", f"b2b_test_{uuid.uuid4().hex[:12]}"]
    with psycopg.connect(server, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield with_database(server, names[0]), with_database(server, names[1])
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def broker_prefix() -> Iterator[str]:
    """This test's key prefix in the machine's Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"b2b-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis(*REDIS)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _metadata_url(dsn: str) -> str:
    return "postgresql+psycopg2://" + dsn.split("://", 1)[1]


def _trigger(cluster: AirflowCluster, as_of: dt.date, drop: Path) -> str:
    run_id = f"night-{as_of.isoformat()}-{uuid.uuid4().hex[:6]}"
    answer = cluster.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={
            "dag_run_id": run_id,
            "logical_date": logical_date_for(as_of).isoformat(),
            "conf": {"as_of_date": as_of.isoformat(), "source_dir": str(drop)},
        },
    )
    assert answer.status_code == 200, answer.text
    return run_id


def _worker_running(cluster: AirflowCluster, pid: int) -> str:
    """The worker whose processes include `pid` (a task's process)."""
    import psutil

    for name in WORKERS:
        try:
            family = {p.pid for p in psutil.Process(cluster.components[name].process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:  # the killed one
            continue
        if pid in family:
            return name
    raise AssertionError(f"no worker runs pid {pid}")


def _tasks_per_worker(cluster: AirflowCluster, run_id: str) -> dict[str, set[str]]:
    """The task ids each worker's log says it executed for run `run_id`."""
    import re

    ran: dict[str, set[str]] = {}
    for name in WORKERS:
        text = cluster.components[name].log.read_text(errors="replace")
        ran[name] = {
            m[1]
            for line in text.splitlines()
            if "Executing workload in Celery" in line and run_id in line
            for m in [re.search(r"task_id='([^']+)'", line)]
            if m
        }
    return ran


def test_the_night_under_a_scheduler_and_two_celery_workers(
    server: str, databases: tuple[str, str], broker_prefix: str, reference_night: ReferenceNight, tmp_path: Path
) -> None:
    metadata_db, warehouse = databases
    ensure_manifest(warehouse)  # the DAG renders its dbt tasks from the compiled manifest
    port = free_port()
    deployment = Deployment(
        dags_folder=str(dags_folder()),
        plugins_folder=str(dags_folder().parent / "plugins"),
        metadata_db=_metadata_url(metadata_db),
        broker_url=f"redis://{REDIS[0]}:{REDIS[1]}/0",
        execution_api_url=f"http://127.0.0.1:{port}/execution/",
        warehouse_dsn=warehouse,
        worker_concurrency="2",  # two workers of 2 on this 2-CPU machine
        parallelism="4",
    )
    drop = tmp_path / "drop"
    shutil.copytree(reference_night.drop, drop)
    cluster = AirflowCluster(tmp_path, deployment, broker_prefix, {"B2B_HOME": str(tmp_path / "home")})

    migrated = cluster.airflow("db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    try:
        cluster.start("api-server", "api-server")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        cluster.start("triggerer", "triggerer")
        for name in WORKERS:
            cluster.start_worker(name)
        cluster.wait_healthy()
        cluster.wait_for_dag(DAG_ID)
        unpaused = cluster.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        assert unpaused.status_code == 200, unpaused.text

        # 1. the first night; the worker running its dbt build is killed during it
        run_id = _trigger(cluster, AS_OF, drop)
        deadline = time.monotonic() + 900
        producer: dict = {}
        while time.monotonic() < deadline:
            cluster.check_running()
            producer = cluster.task_instances(DAG_ID, run_id).get(PRODUCER, {})
            if producer.get("state") == "running" and producer.get("pid"):
                break
            assert cluster.run_state(DAG_ID, run_id) not in ("success", "failed"), producer
            time.sleep(1)
        assert producer.get("state") == "running", f"the dbt build never ran: {producer}"
        # into the build: some models done (their statuses pushed as XComs), the build still running
        statuses: list[str] = []
        while time.monotonic() < deadline and len(statuses) < 3:
            entries = cluster.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{PRODUCER}/xcomEntries")
            statuses = [x["key"] for x in entries.json().get("xcom_entries", []) if x["key"].endswith("_status")]
            time.sleep(0.5)
        assert len(statuses) >= 3, statuses
        killed = _worker_running(cluster, producer["pid"])
        cluster.kill(killed)
        assert cluster.task_instances(DAG_ID, run_id)[PRODUCER]["try_number"] == 1  # killed mid-build
        survivor = next(name for name in WORKERS if name != killed)
        # the scheduler finds the build's heartbeat gone and the retry builds on the other worker
        retry: dict = {}
        while time.monotonic() < deadline:
            cluster.check_running()
            retry = cluster.task_instances(DAG_ID, run_id)[PRODUCER]
            if retry["try_number"] == 2 and retry["state"] == "running" and retry.get("pid"):
                break
            time.sleep(1)
        assert retry["try_number"] == 2 and retry["state"] == "running", retry
        assert _worker_running(cluster, retry["pid"]) == survivor
        cluster.start_worker(killed)  # back, as compose's `restart: always` brings it: the rest uses both

        assert cluster.wait_for_run(DAG_ID, run_id) == "success", cluster.task_instances(DAG_ID, run_id)
        instances = cluster.task_instances(DAG_ID, run_id)
        assert instances[PRODUCER]["try_number"] == 2, instances[PRODUCER]
        assert fingerprint(warehouse) == reference_night.marts  # the marts of `b2b run`, row for row

        # 2. both workers ran tasks of the night, and the survivor built dbt again
        ran = _tasks_per_worker(cluster, run_id)
        assert ran[killed] and ran[survivor], ran
        assert PRODUCER in ran[killed] and PRODUCER in ran[survivor], ran

        # 3. a night that the gate blocks: the run fails, the published marts stay as they were
        bad_day = AS_OF + dt.timedelta(days=1)
        bad_night(drop, bad_day)
        blocked = _trigger(cluster, bad_day, drop)
        assert cluster.wait_for_run(DAG_ID, blocked) == "failed"
        states = {task: ti["state"] for task, ti in cluster.task_instances(DAG_ID, blocked).items()}
        assert states["quality_gate"] == "failed", states
        assert states["publish"] == "upstream_failed", states
        ran = _tasks_per_worker(cluster, blocked)
        assert ran["worker-1"] and ran["worker-2"], ran  # the restarted worker took its share
        assert fingerprint(warehouse) == reference_night.marts
    finally:
        cluster.stop()
        # 4. nothing of the cluster outlives it
        left = cluster.leftovers()
        assert not left, [(p.pid, p.cmdline()) for p in left]
