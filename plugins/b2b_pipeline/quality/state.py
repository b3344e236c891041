"""The gate's state in the warehouse: `raw_files.gate_runs`, one row per gate run or operator acceptance.

Tonight's load batches (for the raw checks) are those after the last batch a passed gate run
covered: `since_batch_id < batch_id <= through_batch_id` (see docs/quality-gate.md).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from b2b_pipeline.filedrop.schema import ensure_raw_schema
from b2b_pipeline.quality.result import GateResult
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

GATE_RUNS_DDL = """
create table if not exists raw_files.gate_runs (
    run_id bigint generated always as identity primary key,
    as_of_date date not null,
    started_at timestamptz not null,
    finished_at timestamptz not null default clock_timestamp(),
    passed boolean not null,
    accepted boolean not null default false,
    since_batch_id bigint not null,
    through_batch_id bigint not null,
    blocking integer not null default 0,
    warnings integer not null default 0,
    report text,
    note text
)
"""


def ensure_gate_state(conn: Any) -> None:
    """Create the raw layer's bookkeeping (if no load ever ran) and `raw_files.gate_runs`."""
    ensure_raw_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('raw_files.gate_runs ddl'))")
        conn.execute(GATE_RUNS_DDL)


def batch_scope(conn: Any) -> tuple[int, int]:
    """Tonight's batches as (since_batch_id, through_batch_id]: after the last batch a passed run covered."""
    row = conn.execute(
        "select (select coalesce(max(through_batch_id), 0) from raw_files.gate_runs where passed), "
        "(select coalesce(max(batch_id), 0) from raw_files.load_batches)"
    ).fetchone()
    since, through = int(row[0]), int(row[1])
    return since, max(through, since)


def record_gate_run(dsn: str, result: GateResult, report: Path | None = None) -> None:
    """Remember the run; a passed run moves the start of the next night's batches past its own."""
    with connect(dsn, autocommit=True) as conn:
        ensure_gate_state(conn)
        conn.execute(
            "insert into raw_files.gate_runs (as_of_date, started_at, passed, since_batch_id, through_batch_id, "
            "blocking, warnings, report) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                result.as_of,
                result.started_at,
                result.passed,
                result.since_batch_id,
                result.through_batch_id,
                len(result.blocking),
                len(result.warnings),
                str(report) if report else None,
            ),
        )


def accept_raw_batches(dsn: str, as_of: date, note: str) -> tuple[int, int]:
    """Accept every load batch so far as checked (an operator's decision, with a note saying why).

    The raw checks of the next gate run then only see batches loaded after this call: the way
    out when a blocked night's quarantine or refusals were looked at and are to be lived with.
    Returns the accepted range (since_batch_id, through_batch_id].
    """
    if not note.strip():
        raise ValueError("say why the batches are accepted (note)")
    with connect(dsn, autocommit=True) as conn:
        ensure_gate_state(conn)
        since, through = batch_scope(conn)
        conn.execute(
            "insert into raw_files.gate_runs (as_of_date, started_at, passed, accepted, since_batch_id, "
            "through_batch_id, note) values (%s, clock_timestamp(), true, true, %s, %s, %s)",
            (as_of, since, through, note),
        )
    log.warning("load batches %s..%s accepted by an operator: %s", since + 1, through, note)
    return since, through
