"""Task callbacks: what the on-call engineer sees when a night fails."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from b2b_pipeline.config import b2b_home

log = logging.getLogger(__name__)


def notify_failure(context: Any) -> None:
    """Log the failed task and append it to `B2B_HOME/alerts.jsonl` (one JSON object a line)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    alert = {
        "at": datetime.now(UTC).isoformat(),
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(dag_run, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": str(context.get("exception") or ""),
    }
    log.error("night failed: task %s of run %s: %s", alert["task_id"], alert["run_id"], alert["error"])
    try:
        with (b2b_home() / "alerts.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(alert, ensure_ascii=False) + "\n")
    except OSError:  # an alert must never fail the callback
        log.exception("could not write the alert file")
