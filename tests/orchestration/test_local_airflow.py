"""`b2b airflow`: the port checks, the sizing for the machine, and stopping every process standalone started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from airflow_cluster import free_port  # tests/orchestration/airflow_cluster.py

from b2b_pipeline.orchestration.local_airflow import (
    airflow_environment,
    airflow_own_ports,
    local_parallelism,
    port_unavailable,
    process_group,
    standalone_environment,
    stop_process_group,
)

B2B = str(Path(sys.executable).with_name("b2b"))
SIZING = (
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG",
    "AIRFLOW__API__WORKERS",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES",
)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port we listen on ourselves on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- sizing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [
        (None, (2, 2, 1, 1)),
        (1, (2, 2, 1, 1)),
        (2, (2, 2, 1, 1)),
        (4, (4, 4, 1, 2)),
        (8, (8, 8, 2, 4)),
        (64, (16, 16, 4, 4)),
    ],
)
def test_local_parallelism_follows_the_cpus(cpus: int | None, expected: tuple[int, ...]) -> None:
    sizing = local_parallelism(cpus)
    assert sizing == dict(zip(SIZING, map(str, expected), strict=True))


def test_standalone_environment(tmp_path: Path) -> None:
    env = standalone_environment(tmp_path, "postgresql://u:p@127.0.0.1:5432/w", 18123, {"PATH": "/usr/bin"}, cpus=2)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == "18123"
    # tasks talk to the execution API of this API server, not to Airflow's default http://localhost:8080
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin"]
    assert {k: env[k] for k in SIZING} == local_parallelism(2)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    # the scheduler's health check server (port 8974) stays off: not among the ports standalone takes
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "False"


def test_standalone_environment_keeps_the_users_sizing(tmp_path: Path) -> None:
    env = standalone_environment(tmp_path, "postgresql://x@h/w", 18123, {"AIRFLOW__CORE__PARALLELISM": "7"}, cpus=2)
    assert env["AIRFLOW__CORE__PARALLELISM"] == "7"
    assert env["AIRFLOW__API__WORKERS"] == "1"


def test_airflow_environment_turns_the_health_check_server_off(tmp_path: Path) -> None:
    assert airflow_environment(tmp_path, "postgresql://x@h/w")["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "False"


# --- ports --------------------------------------------------------------------------------------------------


def test_airflow_own_ports() -> None:
    assert set(airflow_own_ports({})) == {8793, 8794}
    moved = airflow_own_ports({"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "9793"})
    assert set(moved) == {9793, 8794}
    assert "log server" in moved[9793]


def test_port_unavailable(listening: int) -> None:
    assert port_unavailable(listening) == "already in use"
    assert port_unavailable(free_port()) is None


def _b2b_airflow(port: int, home: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "B2B_WAREHOUSE_DSN"}
    env.update(B2B_HOME=str(home), COLUMNS="200")
    started = time.monotonic()
    done = subprocess.run(
        [B2B, "airflow", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize("port", [8793, 8794])
def test_refuses_airflows_own_ports(port: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done, seconds = _b2b_airflow(port, home)
    assert done.returncode == 2, done.stderr
    assert str(port) in done.stderr and "log server" in done.stderr
    assert "Airflow UI on" not in done.stdout
    assert not home.exists(), "nothing may start (no warehouse, no Airflow home) before the port is checked"
    assert seconds < 20


def test_refuses_a_port_in_use(listening: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done, seconds = _b2b_airflow(listening, home)
    assert done.returncode == 1, done.stderr
    assert f"port {listening} on 127.0.0.1 is already in use" in done.stderr
    assert "Airflow UI on" not in done.stdout
    assert not home.exists()
    assert seconds < 20


# --- stopping a process group -------------------------------------------------------------------------------

# a leader like `airflow standalone`: on SIGINT it terminates its children, waits for them and ends. Its
# child obeys; "stubborn": two more ignore SIGINT and SIGTERM, one in the group, one in a group of its own
# (as Airflow's task runners are); "orphans": the leader ends at once, leaving its child in the group
TREE = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    child = "import time\\nprint(flush=True)\\nwhile True: time.sleep(1)"
    deaf = (
        "import signal, time\\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        "print(flush=True)\\n"
        "while True: time.sleep(1)"
    )
    out = subprocess.PIPE
    procs = [subprocess.Popen([sys.executable, "-c", child], stdout=out)]
    if sys.argv[1] == "stubborn":
        procs.append(subprocess.Popen([sys.executable, "-c", deaf], stdout=out))
        procs.append(subprocess.Popen([sys.executable, "-c", deaf], stdout=out, process_group=0))
    for p in procs:
        p.stdout.readline()  # its signal handlers are set
    try:  # before the pids are printed: the test's SIGINT may follow at once
        print(" ".join(str(p.pid) for p in procs), flush=True)
        if sys.argv[1] == "orphans":
            sys.exit(3)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    """
)


def _tree(kind: str) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE, kind], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    return parent, [psutil.Process(parent.pid), *(psutil.Process(pid) for pid in pids)]


def _gone(processes: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes)


def _kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            continue


def test_stop_process_group_stops_a_leader_that_obeys_sigint() -> None:
    parent, processes = _tree("obedient")
    try:
        started = time.monotonic()
        assert stop_process_group(parent.pid, processes[1:], grace=20, reap=parent.poll) is True
        assert time.monotonic() - started < 10
        parent.wait(timeout=5)
        assert _gone(processes)
    finally:
        _kill(processes)


def test_stop_process_group_terminates_what_a_dead_leader_left() -> None:
    parent, processes = _tree("orphans")
    try:
        assert parent.wait(timeout=10) == 3
        assert process_group(parent.pid), "the child is left in the group"
        assert stop_process_group(parent.pid, processes[1:], grace=20) is True
        psutil.wait_procs(processes[1:], timeout=5)
        assert _gone(processes)
    finally:
        _kill(processes)


def test_stop_process_group_kills_what_ignores_sigint_and_what_left_the_group() -> None:
    parent, processes = _tree("stubborn")
    said: list[str] = []
    try:
        assert process_group(parent.pid), "the tree runs"
        assert stop_process_group(parent.pid, processes[1:], grace=1, reap=parent.poll, say=said.append) is False
        parent.wait(timeout=5)
        psutil.wait_procs(processes, timeout=5)
        assert _gone(processes)
        assert not process_group(parent.pid)
        assert said and "killing" in said[0]
    finally:
        _kill(processes)


# --- the real thing -----------------------------------------------------------------------------------------

UP_TIMEOUT = 180  # s: a fresh home migrates Airflow's database and starts five Python processes on two cores
STOP_TIMEOUT = 60  # s: the 30 s grace plus the SIGKILL of whatever ignores it


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the API server is up
    except (OSError, ValueError):
        return False


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_every_process_airflow_started(warehouse: str, b2b_home: Path, tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "b2b-airflow.log"
    with output.open("w") as out:
        b2b = subprocess.Popen([B2B, "airflow", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    me = psutil.Process(b2b.pid)
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while not _answers(f"http://127.0.0.1:{port}/api/v2/monitor/health"):
            assert b2b.poll() is None, f"b2b airflow ended ({b2b.returncode}):\n{output.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no UI on {port} after {UP_TIMEOUT} s:\n{output.read_text()[-3000:]}"
            time.sleep(1)
        # the UI answers; wait for standalone's other components too (scheduler, dag-processor, triggerer
        # and their log servers, the LocalExecutor's workers), then take the census
        while time.monotonic() < deadline:
            descendants = me.children(recursive=True)
            titles = " ".join(" ".join(p.cmdline()) for p in descendants if p.is_running())
            if all(name in titles for name in ("scheduler", "dag-processor", "triggerer", "LocalExecutor")):
                break
            time.sleep(1)
        descendants = me.children(recursive=True)
        standalone = next(p for p in me.children() if "standalone" in " ".join(p.cmdline()))
        group = os.getpgid(standalone.pid)
        assert group != os.getpgid(b2b.pid), "standalone runs in a process group of its own"
        assert len(descendants) >= 7, [" ".join(p.cmdline()) for p in descendants]

        b2b.send_signal(signal.SIGTERM)
        assert b2b.wait(timeout=STOP_TIMEOUT) == 0, output.read_text()[-3000:]
        _, alive = psutil.wait_procs(descendants, timeout=5)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        assert not process_group(group)
        assert "Stopping Airflow" in output.read_text()
        assert port_unavailable(port) is None, "the UI's port is free again"
    finally:
        _kill([me, *descendants])
