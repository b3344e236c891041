"""Landing an API source in the warehouse: one raw schema per source system, every version once.

An API connector is a dlt source (https://dlthub.com/docs) whose resources yield `version_row`s.
`land()` runs it into `raw_<source_system>` of the warehouse with dlt's PostgreSQL destination.
What dlt does for us here: paging helpers, retries with backoff honouring `Retry-After`
(`api_session`), the incremental cursor of each stream (`dlt.sources.incremental`), kept in the
warehouse beside the data (`raw_<source>._dlt_pipeline_state`) and moved only when the rows it
covers are loaded, so a crashed night resumes from the last loaded cursor; extracted pages are
written to files as they arrive (bounded memory) and loaded with the load's id
(`raw_<source>._dlt_loads`: load id, status, time).

Every stream's table has one row per version of a record: `record_id`, `updated_at` (UTC),
`is_deleted`, `doc` (the record exactly as the API returned it, `jsonb`), `_version` (a hash of
`doc` and `is_deleted`) and `_extracted_at`, plus dlt's `_dlt_load_id` and `_dlt_id`. A version
seen again (the lookback window re-reads some records every night) is not stored twice: the
tables are merged insert-only on (`record_id`, `_version`). The dbt staging models of the source
read the latest version of each record as of the night's cutoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from b2b_pipeline.config import b2b_home

log = logging.getLogger(__name__)

RAW_COLUMNS: dict[str, dict[str, Any]] = {
    "record_id": {"data_type": "text", "nullable": False},
    "updated_at": {"data_type": "timestamp", "nullable": True},
    "is_deleted": {"data_type": "bool", "nullable": False},
    "doc": {"data_type": "json", "nullable": False},
    "_version": {"data_type": "text", "nullable": False},
    "_extracted_at": {"data_type": "timestamp", "nullable": False},
}


class SourceRefused(RuntimeError):
    """The service refused the credential or the client (a wrong token or webhook, a blocked
    integration): no retry heals it, so the night's extract fails at once instead of retrying."""


def raw_schema(source_system: str) -> str:
    """The warehouse schema a source system lands in."""
    return f"raw_{source_system}"


def version_row(
    record_id: Any, updated_at: datetime | None, doc: Mapping[str, Any], *, is_deleted: bool = False
) -> dict[str, Any]:
    """The raw row of one version of a record: its id (as text), when it changed (UTC), whether it
    is a deletion, the record as the API returned it, and the hash that identifies the version."""
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    version = hashlib.sha256(f"{int(is_deleted)}:{canonical}".encode()).hexdigest()
    if updated_at is not None and updated_at.tzinfo is None:
        raise ValueError(f"record {record_id}: updated_at {updated_at} has no time zone")
    return {
        "record_id": str(record_id),
        "updated_at": updated_at.astimezone(UTC) if updated_at is not None else None,
        "is_deleted": is_deleted,
        "doc": dict(doc),
        "_version": version,
        "_extracted_at": datetime.now(UTC),
    }


def raw_resource(name: str, **kwargs: Any) -> Callable:
    """`dlt.resource` for a stream of `version_row`s: insert-only merge on (record_id, _version),
    `doc` kept as one jsonb column (no child tables)."""
    import dlt

    return dlt.resource(
        name=name,
        primary_key=("record_id", "_version"),
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        max_table_nesting=0,
        columns=RAW_COLUMNS,
        **kwargs,
    )


class TokenBucket:
    """At most `rate` requests a second on average, `burst` at once: the client-side side of a
    service's documented rate limit, so that a night does not provoke its 429s (or worse).
    `clock` and `sleep` are time.monotonic and time.sleep; a test gives its own."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting, for the benchmark

    def take(self) -> None:
        """Wait, if need be, until a request may go."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                pause = (1 - self._tokens) / self.rate
                self.waited += pause
                self._sleep(pause)
                self._stamp = self._clock()
                self._tokens = 1.0  # the pause earned the missing part of one token
            self._tokens -= 1


@dataclass
class RequestCounter:
    """Requests sent (retries included), by path: what an extraction cost."""

    total: int = 0
    by_path: dict[str, int] = field(default_factory=dict)

    def add(self, path: str) -> None:
        self.total += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1


def api_session(
    requests_per_second: float,
    burst: int,
    *,
    timeout: float = 60.0,
    max_attempts: int = 6,
    backoff_factor: float = 1.0,
    max_delay: float = 120.0,
    counter: RequestCounter | None = None,
    retry_statuses: tuple[int, ...] = (429, *range(500, 600)),
) -> Any:
    """A `requests` session for an API: a token bucket in front of every request (retries
    included), and dlt's retries of `retry_statuses` (429 and 5xx) and connection errors, with
    exponential backoff honouring `Retry-After`. Answers that are not retried (401, 403, 404...)
    come back as they are: the connector turns them into errors that name the connection, never the
    credential, or handles them itself (Bitrix24's 429 is no rate limit: see its connector)."""
    from dlt.sources.helpers.requests import Client
    from requests.adapters import HTTPAdapter

    bucket = TokenBucket(requests_per_second, burst)

    class ThrottledAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            bucket.take()
            if counter is not None:
                counter.add(request.path_url.split("?", 1)[0])
            return super().send(request, *args, **kwargs)

    client = Client(
        request_timeout=timeout,
        raise_for_status=False,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_delay,
        respect_retry_after_header=True,
        status_codes=retry_statuses,
    )
    session = client.session
    adapter = ThrottledAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.bucket = bucket  # type: ignore[attr-defined]
    return session


@dataclass(frozen=True)
class LandingReport:
    """What one extraction landed: rows per stream (versions new to the raw layer or not)."""

    source_system: str
    load_ids: tuple[str, ...]
    rows: dict[str, int]

    @property
    def rows_landed(self) -> int:
        return sum(self.rows.values())


def pipelines_dir(home: Path | None = None) -> Path:
    """dlt's working folder (extracted pages not yet loaded, local state): `<B2B_HOME>/dlt`."""
    return (home or b2b_home()) / "dlt"


def land(dsn: str, source_system: str, source: Any, *, home: Path | None = None) -> LandingReport:
    """Run the dlt `source` into `raw_<source_system>` of the warehouse at `dsn`.

    One dlt pipeline per source system and warehouse database: a package that an earlier run
    extracted but did not load (a crash) is loaded first, then tonight's extraction runs from the
    cursors of the last loaded package.
    """
    import dlt
    from psycopg.conninfo import conninfo_to_dict

    database = conninfo_to_dict(dsn).get("dbname") or "postgres"
    destination = dlt.destinations.postgres(credentials=_credentials(dsn), destination_name="warehouse")
    pipeline = dlt.pipeline(
        pipeline_name=f"b2b_{source_system}_{database}",
        destination=destination,
        dataset_name=raw_schema(source_system),
        pipelines_dir=str(pipelines_dir(home)),
        progress="log",
    )
    if pipeline.has_pending_data:
        log.info("%s: loading the pages an interrupted extraction left", source_system)
        pipeline.load()
    info_run = pipeline.run(source)
    rows: dict[str, int] = {}
    trace = pipeline.last_trace
    if trace is not None and trace.last_normalize_info is not None:
        for table, count in trace.last_normalize_info.row_counts.items():
            if not table.startswith("_dlt"):
                rows[table] = rows.get(table, 0) + int(count)
    report = LandingReport(source_system, tuple(p.load_id for p in info_run.load_packages), rows)
    log.info("%s: %d rows landed in %s (%s)", source_system, report.rows_landed, raw_schema(source_system), rows)
    return report


def landed_rows(dsn: str, source_system: str) -> dict[str, int]:
    """Rows in each raw table of `source_system` (every version landed so far); {} before its first landing."""
    import psycopg
    from psycopg import sql

    schema = raw_schema(source_system)
    with psycopg.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = %s "
                "and table_name not like '\\_dlt%%' order by 1",
                (schema,),
            )
        ]
        return {
            table: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))).fetchone()[0]
            for table in tables
        }


def _credentials(dsn: str) -> Any:
    """dlt's PostgreSQL credentials for any libpq URL or key/value string, unix sockets included
    (`?host=/dir`). A server with trust authentication has no password: dlt's credentials then
    need an explicit empty one."""
    from urllib.parse import quote, urlencode

    from dlt.destinations.impl.postgres.configuration import PostgresCredentials
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    host = str(info.get("host") or "localhost")
    user = quote(str(info.get("user") or "postgres"), safe="")
    port = str(info.get("port") or "5432")
    dbname = quote(str(info.get("dbname") or "postgres"), safe="")
    url = f"postgresql://{user}@localhost:{port}/{dbname}?{urlencode({'host': host})}"
    credentials = PostgresCredentials()
    credentials.parse_native_representation(url)
    credentials.password = str(info.get("password") or "")
    credentials.resolve()
    return credentials
