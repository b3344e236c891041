"""Run the project's dbt commands in-process, against a warehouse named by a PostgreSQL URL.

There is one dbt profile, `dbt_project/profiles.yml`, and it reads only the `B2B_PG_*`
environment variables (`dbt_environment()` makes them from a URL), so no credential is ever
written to a file or put on a command line. `run_dbt()` sets them for the duration of one
`dbtRunner` invocation and restores them afterwards (the CLI's dbt docs, tests); the nightly DAG's
dbt tasks (cosmos) read the same file, with the variables set as each task starts
(`orchestration.task_guard.hold_night_for_dbt`). `night_vars()` are the dbt vars of a night, for
both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from b2b_pipeline.config import (
    DBT_THREADS_ENV,
    REPORTING_SETTING_NAMES,
    dbt_project_dir,
    dbt_threads,
    night_settings,
)
from b2b_pipeline.publish import candidate

log = logging.getLogger(__name__)

# dbt tests that the quality gate runs as they are, with severity block (the key checks of the core
# star): the nightly DAG leaves them to the gate rather than scan the same tables twice.
# tests/quality/test_suites.py holds each tagged test to its twin in expectations/core.yml.
GATE_CHECKED_TESTS = "tag:checked_by_gate"
# dbt's unit tests (the `unit_tests:` of the models' YAML) test the SQL on fixed rows, not the night's data:
# every dbt invocation made here or by the DAG's tasks (dbt_environment) leaves them out, as dbt recommends
# for production (`--exclude-resource-type unit_test`); the test suite runs them (`run_dbt(unit_tests=True)`).
ENV_EXCLUDE_RESOURCE_TYPES = "DBT_EXCLUDE_RESOURCE_TYPES"
UNIT_TEST = "unit_test"
ENV_HOST = "B2B_PG_HOST"
ENV_PORT = "B2B_PG_PORT"
ENV_USER = "B2B_PG_USER"
ENV_PASSWORD = "B2B_PG_PASSWORD"
ENV_DBNAME = "B2B_PG_DBNAME"
ENV_SSLMODE = "B2B_PG_SSLMODE"
DEFAULT_SSLMODE = "prefer"  # libpq's
DEFAULT_PORT = 5432
DEFAULT_SOCKET_DIR = "/var/run/postgresql"

# dbt's in-process runner shares global state (flags, adapters): one invocation at a time.
_INVOKE_LOCK = threading.Lock()

_FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})


class DbtError(RuntimeError):
    """A dbt invocation that did not succeed; `failures` lists the failed nodes and their messages."""

    def __init__(self, message: str, failures: Sequence[DbtNodeResult] = (), result: DbtResult | None = None):
        self.failures = list(failures)
        self.result = result
        lines = [message]
        lines += [f"  - {f.unique_id} [{f.status}]: {f.message or ''}".rstrip() for f in self.failures]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class DbtNodeResult:
    """The outcome of one node (model, test, seed...) of an invocation."""

    unique_id: str
    status: str
    message: str | None = None
    execution_time: float = 0.0
    failures: int | None = None

    @property
    def failed(self) -> bool:
        """True for an error, a failed test or a runtime error (not for a warning or a skip)."""
        return self.status in _FAILED_STATUSES


@dataclass
class DbtResult:
    """The outcome of one dbt invocation."""

    command: list[str]
    success: bool
    elapsed_seconds: float
    nodes: list[DbtNodeResult] = field(default_factory=list)
    raw: Any = None  # dbt's own result object (RunExecutionResult, Manifest, ...), for callers that need it

    @property
    def failed_nodes(self) -> list[DbtNodeResult]:
        """The nodes that errored or failed."""
        return [n for n in self.nodes if n.failed]

    @property
    def warned_nodes(self) -> list[DbtNodeResult]:
        """The nodes that finished with a warning (e.g. a test of severity warn that found rows)."""
        return [n for n in self.nodes if n.status == "warn"]


def night_vars(
    as_of: date | str, *, candidates: bool = True, settings: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The dbt vars of the night of `as_of`: its as-of date; the schemas core and marts are built
    into (the candidate schemas the quality gate checks and the publish step swaps in, unless
    `candidates` is false); the checksum of the project's macros (the incremental models rebuild in
    full when it changes); and the night's settings (`settings`, else `config.night_settings()`: the
    source systems, reporting_currency, fx_base_currency, reporting_timezone, sales_pipelines, read
    from b2b.yml or B2B_* variables). A change of a source or of the time zone rebuilds the
    incremental models in full (macro night_settings_key). The DAG passes these to cosmos, `as_of`
    and the settings as templates of what its first task fixed (`night_settings_templates`); tests
    pass them to `run_dbt`."""
    day = as_of if isinstance(as_of, str) else as_of.isoformat()
    core, marts = (candidate("core"), candidate("marts")) if candidates else ("core", "marts")
    return {
        "as_of_date": day,
        "core_schema": core,
        "marts_schema": marts,
        "macros_checksum": macros_checksum(),
        **(night_settings() if settings is None else settings),
    }


def night_settings_templates(night: str) -> dict[str, str]:
    """Airflow templates of the settings the night's first task fixed (`night`: a template expression of
    that task's XCom, a `Night.as_dict()`), one per key of `config.night_settings()`; a list renders as
    JSON text, which the dbt macros read back (`sales_pipelines_list()`)."""
    return {
        key: "{{ " + f"{night}['settings']['{key}']" + (" | tojson" if key == "sales_pipelines" else "") + " }}"
        for key in (*REPORTING_SETTING_NAMES, "crm_source", "billing_source")
    }


def macros_checksum() -> str:
    """A SHA-256 of every macro file of the dbt project (names and contents): part of the checksum
    an incremental model records, so that a changed macro (a column list) rebuilds it in full."""
    digest = hashlib.sha256()
    macros = dbt_project_dir() / "macros"
    for path in sorted(macros.rglob("*.sql")):
        digest.update(path.relative_to(macros).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dbt_environment(dsn: str, threads: int | None = None, *, unit_tests: bool = False) -> dict[str, str]:
    """The environment of a dbt invocation: the `B2B_PG_*` variables of `dsn` that the dbt profile
    reads, the thread count (`threads`, else `B2B_DBT_THREADS`) and, unless `unit_tests`, dbt's
    `DBT_EXCLUDE_RESOURCE_TYPES=unit_test` (no `build` or `test` runs the unit tests; an empty value,
    dbt's default, excludes nothing)."""
    return {
        **dsn_to_env(dsn),
        DBT_THREADS_ENV: str(threads if threads is not None else dbt_threads()),
        ENV_EXCLUDE_RESOURCE_TYPES: "" if unit_tests else UNIT_TEST,
    }


def dsn_to_env(dsn: str) -> dict[str, str]:
    """The `B2B_PG_*` variables of the dbt profile for a PostgreSQL URL.

    Accepts `postgresql://user:password@host:port/dbname` and unix-socket URLs such as
    `postgresql://postgres:@/postgres?host=/tmp/pgdir` (or the host percent-encoded in the
    authority: `postgresql://%2Ftmp%2Fpgdir/postgres`). Query parameters `host`, `port`, `user`,
    `password` and `dbname` override the authority's values, as libpq does; `sslmode` is passed on
    (default `prefer`, libpq's).
    """
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")

    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    user, password = "", ""
    if userinfo:
        raw_user, sep, raw_password = userinfo.partition(":")
        user = unquote(raw_user)
        password = unquote(raw_password) if sep else ""

    host, port = _split_host_port(hostport)
    dbname = unquote(parts.path.lstrip("/"))

    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    host = query.get("host", host) or host
    port = query.get("port", port) or port
    user = query.get("user", user) or user
    password = query.get("password", password)
    dbname = query.get("dbname", dbname) or dbname

    if not host:
        host = DEFAULT_SOCKET_DIR
    if not port:
        port = str(DEFAULT_PORT)
    if not user:
        user = os.environ.get("PGUSER") or "postgres"
    if not dbname:
        dbname = user
    if not port.isdigit():
        raise ValueError(f"invalid port {port!r} in the warehouse URL")
    return {
        ENV_HOST: host,
        ENV_PORT: port,
        ENV_USER: user,
        ENV_PASSWORD: password,
        ENV_DBNAME: dbname,
        ENV_SSLMODE: query.get("sslmode") or DEFAULT_SSLMODE,
    }


def _split_host_port(hostport: str) -> tuple[str, str]:
    """Split `host[:port]` (IPv6 in brackets, a unix-socket path percent-encoded)."""
    if not hostport:
        return "", ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end]
        rest = hostport[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else ""
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, ""
    return unquote(host), port


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore the previous values."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _node_results(raw: Any) -> list[DbtNodeResult]:
    """The per-node results of a dbt result object (RunExecutionResult and friends), if it has any."""
    nodes: list[DbtNodeResult] = []
    for item in getattr(raw, "results", None) or []:
        node = getattr(item, "node", None)
        unique_id = getattr(node, "unique_id", None) or getattr(item, "unique_id", "?")
        status = getattr(item, "status", "")
        status = str(getattr(status, "value", status)).lower()
        nodes.append(
            DbtNodeResult(
                unique_id=unique_id,
                status=status,
                message=getattr(item, "message", None),
                execution_time=float(getattr(item, "execution_time", 0.0) or 0.0),
                failures=getattr(item, "failures", None),
            )
        )
    return nodes


def run_dbt(
    command: list[str],
    *,
    dsn: str,
    vars: Mapping[str, Any],
    project_dir: Path | None = None,
    target_path: Path | None = None,
    log_path: Path | None = None,
    threads: int | None = None,
    raise_on_failure: bool = True,
    unit_tests: bool = False,
) -> DbtResult:
    """Run one dbt command in-process against the warehouse of `dsn` and return its result.

    `command` is dbt's argument list without the executable, e.g. `["build", "--select", "marts"]`.
    `vars` are passed as `--vars` (JSON). The project's `profiles.yml` reads the connection from the
    `B2B_PG_*` environment variables, set here from `dsn` for the duration of the call.
    `target_path` and `log_path` default to the project's `target/` and `logs/`; give other
    directories to keep concurrent invocations (tests, candidate builds) apart.

    Raises `DbtError` (listing each failed node and its message) when dbt does not succeed, unless
    `raise_on_failure` is false. dbt's unit tests run only with `unit_tests` (e.g.
    `run_dbt(["test", "--select", "test_type:unit"], ..., unit_tests=True)`); without it `build` and
    `test` leave them out, as the night does.
    """
    from dbt.cli.main import dbtRunner

    project = (project_dir or dbt_project_dir()).resolve()
    if not (project / "dbt_project.yml").is_file():
        raise FileNotFoundError(f"no dbt project in {project}")

    args = [*command, "--project-dir", str(project), "--profiles-dir", str(project)]
    if vars:
        args += ["--vars", json.dumps(vars, default=str)]
    if target_path is not None:
        args += ["--target-path", str(target_path)]
    if log_path is not None:
        args += ["--log-path", str(log_path)]

    env = dbt_environment(dsn, threads, unit_tests=unit_tests)

    log.info("dbt %s (project %s, database %s on %s)", " ".join(command), project, env[ENV_DBNAME], env[ENV_HOST])
    started = time.monotonic()
    with _INVOKE_LOCK, _environ(env):
        outcome = dbtRunner().invoke(args)
    elapsed = time.monotonic() - started

    nodes = _node_results(outcome.result)
    result = DbtResult(
        command=list(command),
        success=bool(outcome.success),
        elapsed_seconds=elapsed,
        nodes=nodes,
        raw=outcome.result,
    )
    for warned in result.warned_nodes:
        log.warning("dbt warning in %s: %s", warned.unique_id, warned.message)
    log.info(
        "dbt %s finished in %.1f s: success=%s, %d nodes, %d failed",
        command[0] if command else "",
        elapsed,
        result.success,
        len(nodes),
        len(result.failed_nodes),
    )
    if not result.success and raise_on_failure:
        reason = f"dbt {' '.join(command)} failed"
        if outcome.exception is not None:
            reason += f": {outcome.exception}"
        raise DbtError(reason, result.failed_nodes, result)
    return result
