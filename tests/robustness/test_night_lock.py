"""Fault suite, one night at a time: the warehouse's night lock and B2B_HOME's lock.

Holders run in child processes (a lock is per process), so that the test can kill them with
SIGKILL as a crashed run would be killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from b2b_pipeline import night_lock
from b2b_pipeline.night_lock import HomeLockBusy, NightLockBusy, home_lock
from b2b_pipeline.warehouse import connect

pytestmark = pytest.mark.integration

B2B = str(Path(sys.executable).with_name("b2b"))

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from b2b_pipeline import night_lock
    kind, target, run_id, night, end = sys.argv[1:6]
    if kind == "home":
        with night_lock.home_lock(Path(target), night):
            print("held", flush=True)
            time.sleep(600)
    elif kind == "whole":
        with night_lock.night_lock(target, run_id, night):
            print("held", flush=True)
            time.sleep(600)
    else:  # one task of a scheduled run: hold, give back (ending the night or not), exit
        night_lock.acquire(target, run_id, night, wait=False)
        night_lock.release(end_night=end == "end")
        print("held", flush=True)
    """
)


def start_holder(
    kind: str, target: str, run_id: str = "", night: str = "2026-05-31", end: str = ""
) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, target, run_id, night, end],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.strip() == "held", proc.stderr.read()  # type: ignore[union-attr]
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def open_lease(dsn: str) -> str | None:
    """The run id of the lease in force (not ended), as recorded in the warehouse."""
    with connect(dsn) as conn:
        row = conn.execute("select run_id from raw_files.night_lock where ended_at is null").fetchone()
    return row[0] if row else None


@pytest.fixture(autouse=True)
def _no_hold_left() -> None:
    yield
    night_lock.release(end_night=True)
    assert not night_lock.holds_lock()


def test_second_run_is_refused_naming_the_running_night(warehouse: str) -> None:
    """A run holds the warehouse: another run with wait=False fails at once, naming the night,
    run, host, process and start of the holder."""
    holder = start_holder("whole", warehouse, "b2b-run:first", "2026-05-31")
    try:
        with pytest.raises(NightLockBusy) as busy:
            night_lock.acquire(warehouse, "b2b-run:second", "2026-05-31", wait=False)
        message = str(busy.value)
        assert "the night of 2026-05-31" in message
        assert f"process {holder.pid}" in message and "b2b-run:first" in message and "started" in message
    finally:
        kill(holder)


def test_waiting_run_goes_on_when_the_holder_ends(warehouse: str) -> None:
    """A waiting run is told who it waits for once, and takes the lock when the holder ends."""
    holder = start_holder("whole", warehouse, "b2b-run:first")
    told: list[str] = []
    try:
        start = time.monotonic()
        with pytest.raises(NightLockBusy):
            night_lock.acquire(
                warehouse, "b2b-run:second", "2026-06-01", on_wait=lambda h: told.append(h.run_id), timeout=3
            )
        assert time.monotonic() - start >= 3  # it waited, polling
        assert told == ["b2b-run:first"]  # said once, not at every poll
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    night_lock.acquire(warehouse, "b2b-run:second", "2026-06-01", timeout=30)
    assert night_lock.holds_lock()


def test_a_killed_run_never_blocks_the_next(warehouse: str) -> None:
    """kill -9 of the run holding the whole night: the next run takes the lock at once."""
    kill(start_holder("whole", warehouse, "b2b-run:killed"))
    assert night_lock.try_acquire(warehouse, "b2b-run:next", "2026-05-31") is None


def test_a_scheduled_run_keeps_the_warehouse_between_its_tasks(warehouse: str, monkeypatch) -> None:
    """A task of a scheduled run gave the lock back without ending the night: another run waits
    (within the gap), the same run's next task goes on."""
    start_holder("task", warehouse, "scheduled__2026-06-01", "2026-05-31").wait(timeout=30)
    holder = night_lock.try_acquire(warehouse, "b2b-run:other", "2026-05-31")
    assert holder is not None and holder.run_id == "scheduled__2026-06-01"
    assert night_lock.try_acquire(warehouse, "scheduled__2026-06-01", "2026-05-31") is None


def test_a_scheduled_run_killed_between_tasks_frees_the_warehouse_after_the_gap(warehouse: str, monkeypatch) -> None:
    """A scheduled run killed between two tasks: its lease is free once the gap has passed."""
    start_holder("task", warehouse, "scheduled__killed", "2026-05-31").wait(timeout=30)
    assert night_lock.try_acquire(warehouse, "b2b-run:other", "2026-05-31") is not None
    monkeypatch.setenv("B2B_NIGHT_LOCK_GAP_SECONDS", "0")
    assert night_lock.try_acquire(warehouse, "b2b-run:other", "2026-05-31") is None


def test_an_ended_night_frees_the_warehouse_at_once(warehouse: str) -> None:
    """The last task (or a final failure) ended the night: the next run takes the lock."""
    start_holder("task", warehouse, "scheduled__done", "2026-05-31", "end").wait(timeout=30)
    assert night_lock.try_acquire(warehouse, "b2b-run:next", "2026-06-01") is None
    assert open_lease(warehouse) == "b2b-run:next"


def test_tasks_of_b2b_run_re_enter_the_process_hold(warehouse: str) -> None:
    """In-process tasks (dag.test under `b2b run`) find the CLI's hold: no second lock, no deadlock."""
    night_lock.acquire(warehouse, "b2b-run:cli", "2026-05-31", whole_run=True)
    night_lock.acquire(warehouse, "manual__task", "2026-05-31", wait=False)
    night_lock.release(end_night=False)
    assert night_lock.holds_lock()


def test_a_lost_hold_is_taken_again_unless_another_run_took_the_warehouse(warehouse: str, monkeypatch) -> None:
    """The connection holding the lock is cut (warehouse restart, an operator): the next task start
    takes the lock again for the same run; if another run took the warehouse meanwhile, it fails."""

    def cut() -> None:
        with connect(warehouse, autocommit=True) as admin:
            admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'b2b night %%'"
            )

    night_lock.acquire(warehouse, "b2b-run:cut", "2026-05-31", whole_run=True)
    cut()
    night_lock.revalidate(warehouse)
    assert night_lock.holds_lock() and open_lease(warehouse) == "b2b-run:cut"
    cut()
    start_holder("task", warehouse, "scheduled__intruder", "2026-06-01").wait(timeout=30)  # took it meanwhile
    with pytest.raises(NightLockBusy, match="scheduled__intruder"):
        night_lock.revalidate(warehouse)
    assert not night_lock.holds_lock()


def test_a_task_hook_fails_without_retry_on_a_missing_database(warehouse: str, monkeypatch) -> None:
    """The DAG's pre_execute hook on a warehouse whose database does not exist: AirflowFailException
    (no retry), the cause in one line."""
    from airflow.sdk.exceptions import AirflowFailException

    from b2b_pipeline.orchestration.connection import connection_json
    from b2b_pipeline.orchestration.task_guard import hold_night
    from b2b_pipeline.warehouse import with_database

    monkeypatch.setenv("AIRFLOW_CONN_B2B_WAREHOUSE", connection_json(with_database(warehouse, "no_such_db")))
    ti = SimpleNamespace(dag_id="b2b_sales_nightly", run_id="manual__x", task_id="extract_crm", map_index=-1)
    context = {"ti": ti, "dag_run": SimpleNamespace(conf={"as_of_date": "2026-05-31"})}
    with pytest.raises(AirflowFailException) as failed:
        hold_night(context)
    assert "no_such_db" in str(failed.value) and "\n" not in str(failed.value)


def test_task_hooks_hold_and_end_the_night(warehouse: str, monkeypatch) -> None:
    """The DAG's hooks outside `b2b run`: a task holds the lock while it runs; the last task's
    success ends the night's lease."""
    from b2b_pipeline.orchestration.connection import connection_json
    from b2b_pipeline.orchestration.task_guard import hold_night, release_night_on_success

    monkeypatch.setenv("AIRFLOW_CONN_B2B_WAREHOUSE", connection_json(warehouse))
    run = SimpleNamespace(conf={"as_of_date": "2026-05-31"})

    def context(task_id: str) -> dict:
        ti = SimpleNamespace(dag_id="b2b_sales_nightly", run_id="scheduled__1", task_id=task_id, map_index=-1)
        return {"ti": ti, "dag_run": run}

    hold_night(context("publish"))
    assert night_lock.holds_lock()
    release_night_on_success(context("publish"))
    assert not night_lock.holds_lock()
    assert open_lease(warehouse) == "scheduled__1"  # the night goes on
    hold_night(context("report"))
    release_night_on_success(context("report"))
    assert open_lease(warehouse) is None  # the night is over


def test_a_dbt_task_gets_the_profiles_environment_for_its_run_only(warehouse: str, monkeypatch) -> None:
    """A dbt task's hook holds the night and sets the B2B_PG_* variables of the warehouse connection
    (the project's one dbt profile reads them); its callback restores what was there before, so
    that nothing of the connection outlives the task in the process."""
    from b2b_pipeline.orchestration.connection import connection_json
    from b2b_pipeline.orchestration.task_guard import hold_night_for_dbt, release_night_on_failure
    from b2b_pipeline.transform.dbt_runner import dsn_to_env

    monkeypatch.setenv("AIRFLOW_CONN_B2B_WAREHOUSE", connection_json(warehouse))
    monkeypatch.setenv("B2B_DBT_THREADS", "3")  # the operator's own setting stays
    monkeypatch.delenv("B2B_PG_PASSWORD", raising=False)
    ti = SimpleNamespace(dag_id="b2b_sales_nightly", run_id="scheduled__dbt", task_id="dbt.dbt_producer_watcher")
    context = {"ti": ti, "dag_run": SimpleNamespace(conf={"as_of_date": "2026-05-31"})}
    hold_night_for_dbt(context)
    try:
        assert night_lock.holds_lock()
        expected = dsn_to_env(warehouse)
        assert {name: os.environ.get(name) for name in expected} == expected
        assert os.environ["B2B_DBT_THREADS"] == "3"
    finally:
        release_night_on_failure(context)
    assert not night_lock.holds_lock()
    assert "B2B_PG_PASSWORD" not in os.environ and os.environ["B2B_DBT_THREADS"] == "3"


def test_home_lock_refuses_a_second_run_and_survives_a_kill(tmp_path: Path) -> None:
    """One night at a time per B2B_HOME: a second run is refused naming the running night's process;
    once that process is killed the home is free."""
    holder = start_holder("home", str(tmp_path), night="2026-05-31")
    with pytest.raises(HomeLockBusy) as busy, home_lock(tmp_path, "2026-06-01", wait=False):
        pass
    assert "the night of 2026-05-31" in str(busy.value) and f"process {holder.pid}" in str(busy.value)
    kill(holder)
    with home_lock(tmp_path, "2026-06-01", wait=False):
        assert "2026-06-01" in (tmp_path / "night.lock").read_text()


def test_b2b_run_no_wait_exits_1_naming_the_running_night(warehouse: str, tmp_path: Path) -> None:
    """`b2b run --no-wait` while another night holds the warehouse: exit 1 at once, the running
    night named on the output; nothing of the night ran."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    holder = start_holder("whole", warehouse, "b2b-run:first", "2026-05-31")
    env = {**os.environ, "B2B_HOME": str(tmp_path / "home"), "B2B_WAREHOUSE_DSN": warehouse}
    try:
        done = subprocess.run(
            [B2B, "run", "--date", "2026-06-01", "--source-dir", str(drop), "--no-wait"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        kill(holder)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, output
    assert "another night is running on this warehouse: the night of 2026-05-31" in output
    assert f"process {holder.pid}" in output
    assert "Night 2026-06-01 from" not in output  # the night itself never started


def test_b2b_run_waits_then_goes_on(warehouse: str, tmp_path: Path) -> None:
    """`b2b run` while another night holds the warehouse: it says it waits and for whom, and starts
    its night once the holder is gone (stopped here once it started)."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    holder = start_holder("whole", warehouse, "b2b-run:first", "2026-05-31")
    env = {**os.environ, "B2B_HOME": str(tmp_path / "home"), "B2B_WAREHOUSE_DSN": warehouse, "COLUMNS": "200"}
    run = subprocess.Popen(
        [B2B, "run", "--date", "2026-06-01", "--source-dir", str(drop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        waiting = run.stdout.readline()  # type: ignore[union-attr]
        while "Waiting" not in waiting and waiting:
            waiting = run.stdout.readline()  # type: ignore[union-attr]
        assert "the night of 2026-05-31" in waiting and "b2b-run:first" in waiting, waiting
        kill(holder)
        started = run.stdout.readline()  # type: ignore[union-attr]
        while "Night 2026-06-01" not in started and started:
            started = run.stdout.readline()  # type: ignore[union-attr]
        assert "Night 2026-06-01 from" in started
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        if holder.poll() is None:
            kill(holder)
