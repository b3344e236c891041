"""Wiring for cosmos's watcher mode: the producer's `dbt build` runs before any task that watches it.

In watcher mode cosmos renders one producer task that runs a single `dbt build` of the
whole selection and one sensor per model that ends as its model did, read from the
producer's XComs. Inside a `DbtTaskGroup` cosmos leaves the producer beside the
sensors, so a scheduler (or `dag.test()`, which runs one task at a time) may start a
sensor first and have it wait on a build that has not begun. Putting the producer
upstream of the root sensors removes that race: the sensors then read finished
statuses, and a producer that fails marks them upstream_failed.
"""

from __future__ import annotations

from typing import Any

from cosmos.constants import PRODUCER_WATCHER_DONE_TASK_ID, PRODUCER_WATCHER_TASK_ID


def run_producer_first(group: Any) -> Any:
    """Set the watcher producer of a cosmos `DbtTaskGroup` upstream of its root tasks; return the producer."""
    tasks = {task.task_id.rsplit(".", 1)[-1]: task for task in group.children.values()}
    producer = tasks.get(PRODUCER_WATCHER_TASK_ID)
    if producer is None:
        raise ValueError(f"task group {group.group_id!r} has no {PRODUCER_WATCHER_TASK_ID} task: not in watcher mode")
    skip = {PRODUCER_WATCHER_TASK_ID, PRODUCER_WATCHER_DONE_TASK_ID}
    for root in group.roots:
        if root.task_id.rsplit(".", 1)[-1] not in skip:
            producer >> root
    return producer
