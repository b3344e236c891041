"""Run one night through the real `b2b_sales_nightly` DAG, in-process, with Airflow's state under B2B_HOME.

`b2b run` and `b2b demo` call `run_night()`: it points Airflow at a home of its
own (`B2B_HOME/airflow`: config, SQLite metadata database, logs), migrates that
database once, sets the warehouse connection from the warehouse URL, compiles
the dbt manifest when stale, and executes the DAG for the night with
`dag.test()`, reporting each task as it starts and ends.

`b2b airflow` uses the same home for `airflow standalone`: `airflow_own_ports()`
and `port_unavailable()` check the UI's port first, `standalone_environment()` adds the port and the
parallelism sized for the machine (`local_parallelism()`), and
`run_standalone()` runs standalone in a process group of its own and stops the
whole group on Ctrl-C, SIGTERM or SIGHUP (a closed terminal).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic, sleep
from typing import Any

from b2b_pipeline.config import dags_folder
from b2b_pipeline.night import Night
from b2b_pipeline.orchestration.connection import connection_json
from b2b_pipeline.orchestration.production_shape import PIPELINE_SETTINGS
from b2b_pipeline.quality.report import gate_result_path
from b2b_pipeline.transform.manifest import ensure_manifest
from b2b_pipeline.warehouse import one_line

log = logging.getLogger(__name__)

DAG_ID = "b2b_sales_nightly"
TaskCallback = Callable[[str, str], None]  # (task_id, "running" | "success" | "failed" | "skipped")
MAX_CAUSE = 400  # characters of a failed task's error shown as the night's cause


@dataclass
class NightOutcome:
    """How a night ended: published, blocked by the gate, or failed."""

    night: Night
    state: str  # "published", "blocked" or "failed"
    tasks: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # each task's duration
    gate: dict[str, Any] | None = None
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return {"published": 0, "blocked": 2}.get(self.state, 1)


def airflow_environment(home: Path, dsn: str) -> dict[str, str]:
    """The environment that gives Airflow a home of its own under `home` and the warehouse connection."""
    airflow_home = home / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(dags_folder().parent / "plugins"),
        **PIPELINE_SETTINGS,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs" / "airflow"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW_CONN_B2B_WAREHOUSE": connection_json(dsn),
        "B2B_HOME": str(home),
    }


def prepare_airflow(home: Path, dsn: str) -> None:
    """Set the environment and migrate the metadata database when it is new or older than Airflow."""
    env = airflow_environment(home, dsn)
    os.environ.update(env)
    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    from airflow import __version__ as airflow_version

    stamp = airflow_home / ".migrated"
    if stamp.exists() and stamp.read_text().strip() == airflow_version:
        return
    log.info("migrating Airflow's metadata database in %s", airflow_home)
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    stamp.write_text(airflow_version)


# --- `b2b airflow`: `airflow standalone` on localhost ------------------------------------------------------

# The fixed ports that standalone's own components listen on (on all interfaces), whatever the UI's port:
# the scheduler serves the LocalExecutor's task logs on [logging] worker_log_server_port and the triggerer
# its logs on [logging] trigger_log_server_port (Airflow 3.3 configuration reference). A UI on one of them
# dies with "address already in use" while standalone keeps running. The scheduler's health check server
# ([scheduler] scheduler_health_check_server_port, 8974) never starts: `airflow_environment()` turns it off.
AIRFLOW_OWN_PORTS = {
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": (8793, "the log server of Airflow's scheduler (worker serve-logs)"),
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": (8794, "the log server of Airflow's triggerer"),
}
UI_HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 30.0  # after Ctrl-C/SIGTERM: how long standalone may take to stop before SIGKILL
KILL_WAIT_SECONDS = 10.0


def airflow_own_ports(environ: Mapping[str, str] | None = None) -> dict[int, str]:
    """The ports standalone's components listen on themselves (with any override from `environ`): port -> what."""
    environ = os.environ if environ is None else environ
    ports: dict[int, str] = {}
    for variable, (default, what) in AIRFLOW_OWN_PORTS.items():
        try:
            ports[int(environ.get(variable) or default)] = what
        except ValueError:  # not a number: Airflow refuses it itself, the default is what we can say
            ports[default] = what
    return ports


def port_unavailable(port: int, host: str = UI_HOST) -> str | None:
    """Why a server cannot listen on `host:port` now ("already in use", ...), or None when it can.

    Binds as uvicorn does (SO_REUSEADDR): a socket lingering in TIME_WAIT does not count, a listener does
    (also one on 0.0.0.0 or [::]).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "already in use"
            if exc.errno == errno.EACCES:
                return "not allowed for this user (a privileged port)"
            return exc.strerror or str(exc)
    return None


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's cpuset), else `os.cpu_count()`."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def local_parallelism(cpus: int | None) -> dict[str, str]:
    """Airflow settings that size standalone for a machine with `cpus` CPUs (None: unknown, taken as 1).

    Airflow's defaults suit a server: the LocalExecutor forks `[core] parallelism` (32) worker processes at
    start on Linux, each DAG run may run 16 tasks at once, the DAG processor parses with 2 processes. Here a
    task gets a CPU: parallelism is the CPU count (at least 2, so that one long task does not hold the night
    up alone; at most 16), one API server worker per 4 CPUs (1 to 4; one serves a local UI well) and one
    parsing process per 2 CPUs (1 to 4; the project has a single DAG file).
    """
    cpus = max(1, cpus or 1)
    tasks = min(16, max(2, cpus))
    return {
        "AIRFLOW__CORE__PARALLELISM": str(tasks),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(tasks),
        "AIRFLOW__API__WORKERS": str(min(4, max(1, cpus // 4))),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": str(min(4, max(1, cpus // 2))),
    }


def standalone_environment(
    home: Path, dsn: str, port: int, environ: Mapping[str, str] | None = None, cpus: int | None = None
) -> dict[str, str]:
    """The whole environment of `airflow standalone` for `b2b airflow`: `environ` (default: ours), the venv's
    bin first on PATH (standalone starts `airflow scheduler` & co. by name), Airflow's home and the warehouse
    connection, the UI on 127.0.0.1:`port`, and the sizing for the machine unless `environ` sets it."""
    environ = dict(os.environ if environ is None else environ)
    bin_dir = str(Path(sys.executable).parent)
    sizing = local_parallelism(available_cpus() if cpus is None else cpus)
    return {
        **environ,
        **{name: value for name, value in sizing.items() if name not in environ},
        "PATH": bin_dir + os.pathsep + environ.get("PATH", ""),
        **airflow_environment(home, dsn),
        "AIRFLOW__API__HOST": UI_HOST,
        "AIRFLOW__API__PORT": str(port),
        # tasks report to the execution API of this API server; Airflow's default assumes port 8080
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{UI_HOST}:{port}/execution/",
    }


def _alive(process: Any) -> bool:
    """Whether a psutil process still runs (a zombie waiting for a parent that never reaps it does not)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_group(pgid: int) -> list[Any]:
    """The live processes of process group `pgid` (psutil processes)."""
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and _alive(process):
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def _processes(pids: list[int]) -> list[Any]:
    import psutil

    found = []
    for pid in pids:
        with suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def _descendants(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _left(processes: list[Any], pgid: int) -> list[Any]:
    """What still runs of `processes` and of the group `pgid`, each once."""
    found = {p.pid: p for p in processes if _alive(p)}
    found.update((p.pid, p) for p in process_group(pgid))
    return list(found.values())


def stop_process_group(
    pgid: int,
    known: list[Any] | None = None,
    grace: float = STOP_GRACE_SECONDS,
    reap: Callable[[], object] | None = None,
    hurry: Callable[[], bool] | None = None,
    say: Callable[[str], None] | None = None,
) -> bool:
    """Stop process group `pgid` led by `airflow standalone` (and the processes `known` of it that moved to
    groups of their own, as Airflow's task runners do), then SIGKILL whatever of them still runs after
    `grace` seconds, or sooner once `hurry()` is true (a second Ctrl-C). `reap` is called while waiting (to
    collect our own child's exit status), `say` tells what happens. True when all stopped without SIGKILL.

    The graceful stop is SIGINT to the leader alone: standalone then sends each component one SIGTERM and
    waits for it; the scheduler stops its LocalExecutor workers (which ignore SIGINT) and its log server.
    SIGINT to the whole group would give the scheduler a second signal (standalone's SIGTERM) while it shuts
    its workers down, and it was seen to hang there with the workers never told to stop. When the leader is
    gone already (standalone died), the components left get SIGTERM, Airflow's stop signal."""
    known = list(known or []) + _descendants(pgid)
    leader = [p for p in known if p.pid == pgid] or _processes([pgid])
    with suppress(ProcessLookupError):
        if leader and _alive(leader[0]):
            os.kill(pgid, signal.SIGINT)
        else:
            os.killpg(pgid, signal.SIGTERM)
    deadline = monotonic() + grace
    while monotonic() < deadline and not (hurry is not None and hurry()):
        if reap is not None:
            reap()
        if not _left(known, pgid):
            return True
        sleep(0.2)
    left = _left(known, pgid)
    if not left:
        return True
    pids = ", ".join(str(p.pid) for p in left)
    log.warning("killing %d Airflow processes that did not stop (pids %s)", len(left), pids)
    if say is not None:
        say(f"killing {len(left)} Airflow processes that did not stop (pids {pids})")
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    import psutil

    for process in left:
        try:
            process.kill()
        except psutil.Error:
            continue
    deadline = monotonic() + KILL_WAIT_SECONDS
    while monotonic() < deadline and _left(known, pgid):
        if reap is not None:
            reap()
        sleep(0.1)
    return False


def run_standalone(
    env: Mapping[str, str], grace: float = STOP_GRACE_SECONDS, say: Callable[[str], None] | None = None
) -> int:
    """Run `airflow standalone` in a session (and process group) of its own until it ends or we get SIGINT
    or SIGTERM; then stop the whole group (see `stop_process_group`; a second signal kills at once). The exit
    code: 0 when a requested stop went cleanly, 1 when something had to be killed, else standalone's own
    (128 + the signal that killed it)."""
    requested: list[int] = []

    def request_stop(signum: int, frame: Any) -> None:
        requested.append(signum)

    # SIGHUP too: standalone runs in a session of its own, so a closed terminal would not reach it
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, request_stop) for sig in stops}
    airflow = Path(sys.executable).with_name("airflow")
    try:
        child = subprocess.Popen([str(airflow), "standalone"], env=dict(env), start_new_session=True)
        known: list[Any] = []
        code: int | None = None
        while not requested:
            code = child.poll()
            if code is not None:
                break
            known = _descendants(child.pid) or known  # kept to find the ones that leave the group
            for _ in range(10):
                if requested or child.poll() is not None:
                    break
                sleep(0.1)
        if requested and say is not None:
            say(f"Stopping Airflow (all of process group {child.pid}; up to {grace:.0f} s, Ctrl-C again to kill)")
        clean = stop_process_group(
            child.pid,
            known + _descendants(child.pid),
            grace,
            reap=child.poll,
            hurry=lambda: len(requested) > 1,
            say=say,
        )
        child.wait()
        if requested:
            return 0 if clean else 1
        code = child.returncode if code is None else code
        return 128 - code if code < 0 else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def logical_date_for(as_of: date) -> datetime:
    """A logical date for the manual run of the night of `as_of`: the next day 02:00 UTC (the run's conf
    names the night; this only keeps its run id readable and one per night)."""
    return datetime.combine(as_of + timedelta(days=1), time(2, 0), tzinfo=UTC)


class _TaskProgress:
    """An Airflow listener that reports task states to a callback and keeps each failed task's error."""

    def __init__(self, callback: TaskCallback | None) -> None:
        self.callback = callback
        self.errors: dict[str, str] = {}  # task id -> the cause of its (last) failure, in one line

    def _report(self, task_instance: Any, state: str) -> None:
        if self.callback is None:
            return
        try:
            self.callback(task_instance.task_id, state)
        except Exception:  # progress output must never break the night
            log.exception("progress callback failed")

    def _failed(self, task_instance: Any, error: Any) -> None:
        if error is not None:
            self.errors[task_instance.task_id] = one_line(error)[:MAX_CAUSE]
        self._report(task_instance, "failed")


def _listener(callback: TaskCallback | None) -> _TaskProgress:
    from airflow.sdk._shared.listeners import hookimpl

    class Listener(_TaskProgress):
        @hookimpl
        def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
            self._report(task_instance, "running")

        @hookimpl
        def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
            self._report(task_instance, "success")

        @hookimpl
        def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
            self._failed(task_instance, error)

    return Listener(callback)


def load_dag() -> Any:
    """The nightly DAG from the dags folder; raises with the import errors when it does not parse."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder()))
    if bag.import_errors:
        raise RuntimeError(
            "the DAG files do not import:\n" + "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items())
        )
    dag = bag.dags.get(DAG_ID)
    if dag is None:
        raise RuntimeError(f"no DAG {DAG_ID} in {dags_folder()}")
    return dag


def run_night(home: Path, dsn: str, night: Night, on_task: TaskCallback | None = None) -> NightOutcome:
    """Execute the DAG for one night and say how it ended."""
    ensure_manifest(dsn)
    prepare_airflow(home, dsn)
    from airflow.sdk.listener import get_listener_manager

    listener = _listener(on_task)
    manager = get_listener_manager()
    manager.add_listener(listener)
    try:
        return _test_dag(home, night, listener)
    finally:
        manager.pm.unregister(listener)


def _test_dag(home: Path, night: Night, listener: _TaskProgress) -> NightOutcome:
    gate_file = gate_result_path(home, night.as_of)
    gate_file.unlink(missing_ok=True)
    dag = load_dag()
    run = dag.test(logical_date=logical_date_for(night.as_of), run_conf=night.as_dict())
    instances = run.get_task_instances()
    tasks = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in instances}
    seconds = {
        ti.task_id: (ti.end_date - ti.start_date).total_seconds() for ti in instances if ti.start_date and ti.end_date
    }
    gate = json.loads(gate_file.read_text()) if gate_file.exists() else None
    run_state = str(getattr(run.state, "value", run.state))
    if run_state == "success":
        state = "published"
    elif gate is not None and not gate.get("passed", True):
        state = "blocked"
    else:
        state = "failed"
    error = None if state == "published" else _failure_summary(tasks, run_state, listener.errors)
    return NightOutcome(night=night, state=state, tasks=tasks, seconds=seconds, gate=gate, error=error)


def _failure_summary(tasks: dict[str, str], run_state: str, errors: dict[str, str] | None = None) -> str:
    """One line: the cause (the first failed task's error), which tasks failed, and how many did not
    run because of them (not all sixty dbt tasks by name)."""
    failed = sorted(t for t, s in tasks.items() if s == "failed")
    not_run = sum(1 for s in tasks.values() if s == "upstream_failed")
    message = f"tasks failed: {', '.join(failed)}" if failed else f"the run ended {run_state}"
    if not_run:
        message += f" ({not_run} tasks after them did not run)"
    causes = [(t, (errors or {}).get(t)) for t in failed]
    cause = next(((t, c) for t, c in causes if c), None)
    if cause is not None:
        message = f"{cause[0]}: {cause[1]} — {message}"
    return message
