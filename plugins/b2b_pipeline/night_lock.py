"""One night at a time per warehouse: a PostgreSQL advisory lock, and a lease that spans a night's tasks.

Whatever runs a night (`b2b run`, the scheduler's DAG run, a `b2b gate` command) holds the
warehouse's night lock while it writes. The lock has two parts, both in the warehouse's database:

- **An advisory lock** (`pg_advisory_lock_shared`) held by a connection of each process that works
  for the night: the CLI for the whole of `b2b run`, each task of a scheduled run while it
  executes. PostgreSQL drops it the moment that connection goes, so a `kill -9` never leaves it
  behind. The connection's `application_name` names the holder.
- **A lease** (`raw_files.night_lock`, one row) naming the run that owns the warehouse: its run id,
  as-of date, host, process and start. A scheduled night runs as many task processes, one after
  another; between two tasks no process holds the advisory lock, and the lease keeps the night
  theirs. Another run may take the warehouse when the lease is free (ended by the run's last task or
  its final failure), or when nobody holds the advisory lock and the lease was last touched longer
  ago than `B2B_NIGHT_LOCK_GAP_SECONDS` (default 600: a run that was killed between tasks). A run
  that holds the advisory lock from its start to its end (`b2b run`, a gate command) has no gaps:
  once nobody holds the advisory lock, its lease is free at once.

Acquiring is decided in a transaction that holds a second, exclusive advisory lock (the mutex),
so two runners never both win. Within one process the lock is re-entrant: the tasks of a
`b2b run` (executed in-process by `dag.test()`) find the CLI's hold and go on.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from b2b_pipeline.config import night_lock_gap
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

# advisory lock keys (two int4: a namespace for this project, then the lock)
LOCK_NAMESPACE = 0x62326221  # "b2b!"
NIGHT_KEY = 1  # shared by every process working for the night that owns the warehouse
MUTEX_KEY = 2  # exclusive, for the length of one acquire/release decision
POLL_SECONDS = 2.0

LEASE_DDL = """
create schema if not exists raw_files;
create table if not exists raw_files.night_lock (
    singleton boolean primary key default true check (singleton),
    run_id text not null,
    night text not null,
    host text not null,
    pid integer not null,
    started_at timestamptz not null,
    touched_at timestamptz not null,
    ended_at timestamptz,
    whole_run boolean not null default false
);
"""


@dataclass(frozen=True)
class NightHolder:
    """Who owns the warehouse: the run, its night, where it runs and since when."""

    run_id: str
    night: str
    host: str
    pid: int
    started_at: datetime

    def describe(self) -> str:
        started = self.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"the night of {self.night} (run {self.run_id}, host {self.host}, process {self.pid}, started {started})"


class NightLockBusy(RuntimeError):
    """Another run owns the warehouse."""

    def __init__(self, holder: NightHolder) -> None:
        super().__init__(f"another night is running on this warehouse: {holder.describe()}")
        self.holder = holder


@dataclass
class _Hold:
    conn: psycopg.Connection
    run_id: str
    night: str
    whole_run: bool
    depth: int = 1


_process_hold: _Hold | None = None  # the hold of this process (one warehouse per process)


def _mutex(conn: psycopg.Connection) -> None:
    conn.execute("select pg_advisory_xact_lock(%s::int4, %s::int4)", (LOCK_NAMESPACE, MUTEX_KEY))


def _ensure_lease_table(conn: psycopg.Connection) -> None:
    exists = conn.execute("select to_regclass('raw_files.night_lock') is not null").fetchone()[0]  # type: ignore[index]
    if not exists:
        with conn.transaction():
            _mutex(conn)  # two first runs must not both create it
            conn.execute(LEASE_DDL)


def _holders_elsewhere(conn: psycopg.Connection) -> int:
    """Connections other than this one holding the night's advisory lock."""
    row = conn.execute(
        "select count(*) from pg_locks where locktype = 'advisory' and database = "
        "(select oid from pg_database where datname = current_database()) "
        "and classid = %s::oid and objid = %s::oid and objsubid = 2 and granted and pid <> pg_backend_pid()",
        (LOCK_NAMESPACE, NIGHT_KEY),
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class _Lease:
    holder: NightHolder
    touched_at: datetime
    ended_at: datetime | None
    whole_run: bool


def _lease(conn: psycopg.Connection) -> _Lease | None:
    row = conn.execute(
        "select run_id, night, host, pid, started_at, touched_at, ended_at, whole_run from raw_files.night_lock"
    ).fetchone()
    if row is None:
        return None
    return _Lease(NightHolder(row[0], row[1], row[2], row[3], row[4]), row[5], row[6], row[7])


def try_acquire(dsn: str, run_id: str, night: str, *, whole_run: bool = False) -> NightHolder | None:
    """Take the night lock for `run_id`; None when taken, else the holder that keeps it.

    On success the process holds the advisory lock on a connection of its own until `release()`.
    `whole_run`: this process holds it from the run's start to its end (no gaps between tasks).
    """
    global _process_hold
    if _process_hold is not None:
        _process_hold.depth += 1
        return None
    conn = connect(dsn, autocommit=True, application_name=f"b2b night {night} ({run_id})"[:63])
    try:
        _ensure_lease_table(conn)
        with conn.transaction():
            _mutex(conn)
            lease = _lease(conn)
            if lease is not None and lease.holder.run_id != run_id:
                now = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
                abandoned = (
                    lease.ended_at is not None
                    or lease.whole_run
                    or now - lease.touched_at > timedelta(seconds=night_lock_gap())
                )
                if _holders_elsewhere(conn) or not abandoned:
                    conn.close()
                    return lease.holder
            same_run = lease is not None and lease.holder.run_id == run_id and lease.ended_at is None
            conn.execute(
                "insert into raw_files.night_lock (run_id, night, host, pid, started_at, touched_at, whole_run) "
                "values (%(run)s, %(night)s, %(host)s, %(pid)s, now(), now(), %(whole)s) "
                "on conflict (singleton) do update set touched_at = now(), ended_at = null"
                + (
                    ""
                    if same_run
                    else ", run_id = excluded.run_id, night = excluded.night, host = excluded.host, "
                    "pid = excluded.pid, started_at = excluded.started_at, whole_run = excluded.whole_run"
                ),
                {
                    "run": run_id,
                    "night": night,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "whole": whole_run,
                },
            )
            conn.execute("select pg_advisory_lock_shared(%s::int4, %s::int4)", (LOCK_NAMESPACE, NIGHT_KEY))
    except BaseException:
        conn.close()
        raise
    _process_hold = _Hold(conn=conn, run_id=run_id, night=night, whole_run=whole_run)
    log.info("night lock taken by %s for %s", run_id, night)
    return None


def acquire(
    dsn: str,
    run_id: str,
    night: str,
    *,
    wait: bool = True,
    on_wait: Callable[[NightHolder], None] | None = None,
    timeout: float | None = None,
    whole_run: bool = False,
) -> None:
    """Take the night lock, waiting while another run holds it (`on_wait` is told each new holder).

    Raises NightLockBusy at once when `wait` is false, or when `timeout` seconds have passed.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: NightHolder | None = None
    while True:
        holder = try_acquire(dsn, run_id, night, whole_run=whole_run)
        if holder is None:
            return
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            raise NightLockBusy(holder)
        if holder != seen:
            seen = holder
            log.warning("waiting for %s", holder.describe())
            if on_wait is not None:
                on_wait(holder)
        time.sleep(POLL_SECONDS)


def release(*, end_night: bool) -> None:
    """Let go of this process's hold; `end_night` also frees the lease (the night is over)."""
    global _process_hold
    hold = _process_hold
    if hold is None:
        return
    hold.depth -= 1
    if hold.depth > 0:
        return
    _process_hold = None
    try:
        with hold.conn.transaction():
            _mutex(hold.conn)
            hold.conn.execute(
                "update raw_files.night_lock set touched_at = now()"
                + (", ended_at = now()" if end_night else "")
                + " where run_id = %s",
                (hold.run_id,),
            )
    except psycopg.Error:  # the warehouse went away: its advisory lock went with the connection
        log.warning("could not record the end of the night lock's hold", exc_info=True)
    finally:
        hold.conn.close()


def holds_lock() -> bool:
    """Whether this process holds the night lock."""
    return _process_hold is not None


def revalidate(dsn: str) -> None:
    """Make sure this process's hold is still in force: when its connection was lost (the warehouse
    restarted, or an operator ended it), take the lock again for the same run, which succeeds only
    while no other run has taken the warehouse since. Raises NightLockBusy when one has."""
    global _process_hold
    hold = _process_hold
    if hold is None:
        return
    try:
        hold.conn.execute("select 1")
        return
    except psycopg.Error:
        log.warning("the night lock's connection was lost; taking the lock again for %s", hold.run_id)
    with contextlib.suppress(psycopg.Error):
        hold.conn.close()
    _process_hold = None
    holder = try_acquire(dsn, hold.run_id, hold.night, whole_run=hold.whole_run)
    if holder is not None:
        raise NightLockBusy(holder)
    assert _process_hold is not None
    _process_hold.depth = hold.depth


@contextmanager
def night_lock(
    dsn: str,
    run_id: str,
    night: str,
    *,
    wait: bool = True,
    on_wait: Callable[[NightHolder], None] | None = None,
) -> Iterator[None]:
    """Hold the night lock for the block (the whole of one run: the lease ends with it)."""
    acquire(dsn, run_id, night, wait=wait, on_wait=on_wait, whole_run=True)
    try:
        yield
    finally:
        release(end_night=True)


def new_run_id(kind: str) -> str:
    """A run id for a run outside Airflow: its kind, host, process and start."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{datetime.now(UTC):%Y%m%dT%H%M%S}"


@contextmanager
def home_lock(
    home: Path,
    night: str,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `B2B_HOME`'s lock for the block: one night at a time on a home's local Airflow state.

    An exclusive `flock` on `B2B_HOME/night.lock`, which the kernel drops when the process ends
    (a killed run never blocks the next); the file names the holder, for the waiting run's message.
    Raises HomeLockBusy at once when `wait` is false.
    """
    path = home / "night.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another night"
            message = f"another night is running on {home}: {holder}"
            if not wait:
                raise HomeLockBusy(message) from None
            log.warning("waiting: %s", message)
            if on_wait is not None:
                on_wait(message)
            fcntl.flock(f, fcntl.LOCK_EX)
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        f.seek(0)
        f.truncate()
        f.write(f"the night of {night} (host {socket.gethostname()}, process {os.getpid()}, started {started})\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)


class HomeLockBusy(RuntimeError):
    """Another run uses this B2B_HOME's local Airflow state."""
