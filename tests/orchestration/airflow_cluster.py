"""Airflow's production shape on this machine, without Docker: the components of docker-compose.yml as
separate processes of the project's venv, configured by `production_shape.celery_environment()`.

`AirflowCluster` starts `airflow scheduler`, `dag-processor`, `api-server`, `triggerer` and Celery
workers, each in a process group of its own, against a PostgreSQL metadata database and a Redis broker
given to it (the test creates and drops them), drives it through the REST API as a user would, and stops
every process it started. Every process carries a marker variable, so that a test can prove that none
outlived the cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from b2b_pipeline.orchestration.production_shape import Deployment, celery_environment

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
MARKER = "B2B_TEST_AIRFLOW_CLUSTER"
USER = "tester"

# What only this test sets, on top of the shared shape: who may log in (Airflow's simple auth manager;
# the compose file's FAB login is not installed in the project's venv), the secrets of this run, its
# folders, and timings that let a test see in seconds what production sees in minutes.
TEST_TIMINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",  # a killed worker's task noticed sooner
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: Path
    killed: bool = False  # by the test (`AirflowCluster.kill`): its exit is no failure

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class AirflowCluster:
    """The components of one Airflow deployment on this machine (see the module's doc)."""

    def __init__(self, root: Path, deployment: Deployment, broker_prefix: str, extra_env: dict[str, str]) -> None:
        self.root = root
        self.port = int(deployment.execution_api_url.split(":")[2].split("/")[0])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.marker = secrets.token_hex(8)
        self.password = secrets.token_hex(12)
        self.components: dict[str, Component] = {}
        passwords = root / "passwords.json"
        passwords.write_text(json.dumps({USER: self.password}))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "B2B_"))},
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "AIRFLOW_HOME": str(root / "airflow"),
            **celery_environment(deployment),
            **TEST_TIMINGS,
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "logs"),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            # the nights are triggered from outside, through the REST API, as an external scheduler would
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",
            # this run's keys in the machine's Redis, deleted afterwards
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": broker_prefix,
            "PYTHONUNBUFFERED": "1",
            MARKER: self.marker,
            **extra_env,
        }
        self._token: str | None = None

    # --- processes ---------------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run an `airflow` command to its end (e.g. `db migrate`)."""
        return subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, name: str, *args: str) -> Component:
        """Start `airflow <args>` as component `name`, in a process group of its own."""
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [AIRFLOW, *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.components[name] = Component(name, process, log)
        return self.components[name]

    def start_worker(self, name: str) -> Component:
        # Airflow's log server is not needed on one machine (the API server reads the log files): two
        # workers would both want its port
        return self.start(name, "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs")

    def check_running(self) -> None:
        """Fail with its log when a component has died."""
        for component in self.components.values():
            code = component.process.poll()
            if code is not None and not component.killed:
                raise AssertionError(f"airflow {component.name} exited ({code}):\n{component.tail()}")

    def kill(self, name: str) -> list[int]:
        """SIGKILL component `name` and everything it started, as a lost machine would stop; the pids."""
        component = self.components[name]
        try:
            family = [psutil.Process(component.process.pid), *psutil.Process(component.process.pid).children(True)]
        except psutil.Error:
            family = []
        for process in family:
            with suppress(psutil.Error):
                process.kill()
        component.process.wait(timeout=30)
        component.killed = True
        return [p.pid for p in family]

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this cluster still running (found by the marker in their environment)."""
        found = []
        for process in psutil.process_iter():
            with suppress(psutil.Error):
                ours = process.pid != os.getpid() and process.environ().get(MARKER) == self.marker
                if ours and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        return found

    def stop(self, grace: float = 30) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after `grace` seconds."""
        for component in self.components.values():
            with suppress(ProcessLookupError):
                os.killpg(component.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.leftovers():
            for component in self.components.values():
                component.process.poll()
            time.sleep(0.5)
        for process in self.leftovers():
            with suppress(psutil.Error):
                process.kill()
        for component in self.components.values():
            with suppress(ProcessLookupError):
                os.killpg(component.process.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=10)

    # --- the REST API ------------------------------------------------------------------------------

    def wait_healthy(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    return
            time.sleep(1)
        raise AssertionError(
            f"the API server did not answer in {timeout:.0f} s:\n{self.components['api-server'].tail()}"
        )

    def token(self) -> str:
        if self._token is None:
            answer = httpx.post(
                f"{self.base_url}/auth/token", json={"username": USER, "password": self.password}, timeout=30
            )
            assert answer.status_code in (200, 201), answer.text
            self._token = answer.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> None:
        """Until the DAG processor has parsed `dag_id` (fail at once on an import error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            errors = self.api("GET", "/importErrors").json().get("import_errors", [])
            assert not errors, errors
            if self.api("GET", f"/dags/{dag_id}").status_code == 200:
                return
            time.sleep(2)
        raise AssertionError(f"{dag_id} was not parsed in {timeout:.0f} s:\n{self.components['dag-processor'].tail()}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """Every task instance of the run, page after page (the DAG has more tasks than a page: one per
        dbt model, and the order of the answer moves as their states change)."""
        found: dict[str, dict] = {}
        offset, total = 0, None
        while total is None or offset < total:
            answer = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": offset, "order_by": "id"},
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            page = body["task_instances"]
            found.update({ti["task_id"]: ti for ti in page})
            total = body.get("total_entries", 0)
            if not page:
                break
            offset += len(page)
        return found

    def run_state(self, dag_id: str, run_id: str) -> str:
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1200) -> str:
        """Until the run ends; its state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        states = {t: ti["state"] for t, ti in self.task_instances(dag_id, run_id).items()}
        raise AssertionError(f"run {run_id} did not end in {timeout:.0f} s: {states}")
