"""What every task of the nightly DAG does around its work: hold the night lock, fail fast on what cannot heal.

Wired in the DAG's `default_args`, so that it applies to every task: `hold_night` as the
`pre_execute` hook (its exception fails the task, unlike an `on_execute_callback`'s),
`release_night_*` as the success, retry and failure callbacks. cosmos's dbt tasks get
`hold_night_for_dbt` instead (their `operator_args`): the same hold, and the environment the
project's one dbt profile reads, which the release callbacks take away again.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from b2b_pipeline.config import FAULT_KILL_AT_ENV, fault_kill_at
from b2b_pipeline.night import scheduled_as_of
from b2b_pipeline.sources.landing import SourceRefused
from b2b_pipeline.warehouse import is_permanent, one_line

log = logging.getLogger(__name__)

LAST_TASK = "report"  # the night ends with it: its success frees the warehouse's lease
# errors that no retry heals, besides the warehouse's own (authentication, a missing database)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    SourceRefused,  # an API source refused the token or webhook
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    ValueError,
)

_holding: set[tuple[str, str, str, int]] = set()  # the task instances of this process holding the lock
# the variables hold_night_for_dbt set in this process, with the values they had before (None: unset)
_dbt_environment: dict[str, str | None] = {}


def _fail(message: str) -> BaseException:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


@contextmanager
def permanent_failures_not_retried() -> Iterator[None]:
    """Turn an error that a retry cannot heal into AirflowFailException (the task fails, no retry),
    with the cause in one line."""
    try:
        yield
    except Exception as exc:
        if is_permanent(exc) or isinstance(exc, PERMANENT_ERRORS):
            raise _fail(one_line(exc)) from exc
        raise


def _key(context: Any) -> tuple[str, str, str, int]:
    ti = context["ti"]
    return (ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1) or -1)


def night_name(context: Any) -> str:
    """The as-of date of the context's run (its conf, else its data interval), for the lock's messages."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("as_of_date"):
        return str(conf["as_of_date"])
    end = context.get("data_interval_end")
    return scheduled_as_of(end).isoformat() if end is not None else "unknown"


def hold_night(context: Any) -> None:
    """`pre_execute`: take the warehouse's night lock for this task's run (waiting while another
    run holds it). Within `b2b run` the CLI holds it already, in this process: the hook only checks
    that the hold is still in force (taking it again if its connection was lost)."""
    from b2b_pipeline.night_lock import acquire, holds_lock, revalidate
    from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook

    ti = context["ti"]
    if fault_kill_at() == ti.task_id:
        log.warning("%s=%s: this process kills itself as the task starts", FAULT_KILL_AT_ENV, ti.task_id)
        os.kill(os.getpid(), signal.SIGKILL)
    if holds_lock():
        with permanent_failures_not_retried():
            revalidate(WarehouseHook().get_dsn())  # the hold's connection may have been lost since
        return
    with permanent_failures_not_retried():
        acquire(WarehouseHook().get_dsn(), ti.run_id, night_name(context), wait=True)
    _holding.add(_key(context))


def hold_night_for_dbt(context: Any) -> None:
    """`pre_execute` of the dbt tasks: `hold_night`, then the environment the project's dbt profile
    (`dbt_project/profiles.yml`) reads, made from the warehouse connection, for the dbt that cosmos
    runs in this task's process. The values stay in the process's environment only (no file, no
    command line, no log), until the task's success, retry or failure callback takes them away."""
    from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook
    from b2b_pipeline.transform.dbt_runner import dbt_environment

    hold_night(context)
    environment = dbt_environment(WarehouseHook().get_dsn())
    for name in environment:
        _dbt_environment.setdefault(name, os.environ.get(name))
    os.environ.update(environment)


def _release(context: Any, end_night: bool) -> None:
    from b2b_pipeline.night_lock import release

    # a later subprocess of this process (b2b run) does not inherit them
    for name, previous in _dbt_environment.items():
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
    _dbt_environment.clear()
    key = _key(context)
    if key not in _holding:
        return
    _holding.discard(key)
    release(end_night=end_night)


def release_night_on_success(context: Any) -> None:
    """`on_success_callback`: give the lock back; the last task's success ends the night's lease."""
    _release(context, end_night=context["ti"].task_id == LAST_TASK)


def release_night_on_retry(context: Any) -> None:
    """`on_retry_callback`: give the lock back, keeping the lease (the run goes on)."""
    _release(context, end_night=False)


def release_night_on_failure(context: Any) -> None:
    """`on_failure_callback`: a task failed for good, so the run is over: give back the lock and the lease."""
    _release(context, end_night=True)
