"""Run one night through the real `b2b_sales_nightly` DAG, in-process, with Airflow's state under B2B_HOME.

`b2b run` and `b2b demo` call `run_night()`: it points Airflow at a home of its
own (`B2B_HOME/airflow`: config, SQLite metadata database, logs), migrates that
database once, sets the warehouse connection from the warehouse URL, compiles
the dbt manifest when stale, and executes the DAG for the night with
`dag.test()`, reporting each task as it starts and ends.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from b2b_pipeline.config import dags_folder
from b2b_pipeline.night import Night
from b2b_pipeline.orchestration.connection import connection_json
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
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs" / "airflow"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # a local run phones nobody: no usage reports from Airflow or cosmos (each would wait on the network)
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
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


def logical_date_for(as_of: date) -> datetime:
    """The logical date whose data interval [as_of 02:00, as_of+1 02:00) names the night of `as_of`."""
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
