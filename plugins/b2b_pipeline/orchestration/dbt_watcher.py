"""Wiring for cosmos's watcher mode: the producer's `dbt build` runs before any task that watches it.

In watcher mode cosmos renders one producer task that runs a single `dbt build` of the
whole selection and one sensor per model that ends as its model did, read from the
producer's XComs. Inside a `DbtTaskGroup` cosmos leaves the producer beside the
sensors, so a scheduler (or `dag.test()`, which runs one task at a time) may start a
sensor first and have it wait on a build that has not begun. Putting the producer
upstream of the root sensors removes that race: the sensors then read finished
statuses, and a producer that fails marks them upstream_failed.

A producer lost with its worker (a crash, a killed container: no error raised, the
scheduler finds its heartbeat gone) is retried, and the retry builds again on whichever
worker takes it. cosmos's own producer skips any retry and leaves each model to its
sensor, one dbt invocation per model; here the sensors wait for the producer, so its
retry runs the whole `dbt build` again instead. Building again is as safe as re-running
the night: the models write the candidate schemas (never the published ones) and the
append-only and incremental models of staging and intermediate add by file and key, not
by run. A model that dbt reports failed (its SQL, the data it meets) fails the producer
at once: building again would fail the same way. Other errors (the API server or the
warehouse gone for a moment) take the retries.

Re-run a night by triggering a new run, not by clearing this one: a cleared model task on
its second try runs its own model again (cosmos's fallback), sixty-odd dbt invocations.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from cosmos.constants import PRODUCER_WATCHER_DONE_TASK_ID, PRODUCER_WATCHER_TASK_ID

log = logging.getLogger(__name__)

PRODUCER_RETRIES = 2  # builds after a lost worker
PRODUCER_RETRY_DELAY = timedelta(seconds=10)
# how cosmos's dbt runner words a build that ran and had failed nodes (cosmos.dbt.runner.handle_exception_if_needed)
MODELS_FAILED = "dbt invocation completed with errors"


class _BuildAgainOnRetry:
    """Mixed into the producer's class: a retry builds again (see the module's doc), a failed model is final."""

    def execute(self, context: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException
        from cosmos.exceptions import CosmosDbtRunError

        ti = context["ti"]
        try_number = ti.try_number
        if try_number > 1:
            log.info("try %s of the dbt build: the previous try ended without a result; building again", try_number)
            ti.try_number = 1  # cosmos's producer skips a retry; this one runs the build
        try:
            return super().execute(context, **kwargs)  # type: ignore[misc]
        except CosmosDbtRunError as exc:
            if str(exc).startswith(MODELS_FAILED):
                raise AirflowFailException(str(exc)) from exc
            raise
        finally:
            ti.try_number = try_number


def run_producer_first(group: Any) -> Any:
    """Set the watcher producer of a cosmos `DbtTaskGroup` upstream of its root tasks, make a retry of it build
    again (see the module's doc); return the producer."""
    tasks = {task.task_id.rsplit(".", 1)[-1]: task for task in group.children.values()}
    producer = tasks.get(PRODUCER_WATCHER_TASK_ID)
    if producer is None:
        raise ValueError(f"task group {group.group_id!r} has no {PRODUCER_WATCHER_TASK_ID} task: not in watcher mode")
    base = type(producer)
    producer.__class__ = type(base.__name__, (_BuildAgainOnRetry, base), {"__module__": __name__})
    producer.retries = PRODUCER_RETRIES
    producer.retry_delay = PRODUCER_RETRY_DELAY
    skip = {PRODUCER_WATCHER_TASK_ID, PRODUCER_WATCHER_DONE_TASK_ID}
    for root in group.roots:
        if root.task_id.rsplit(".", 1)[-1] not in skip:
            producer >> root
    return producer
