"""Run the project's dbt commands in-process, against a warehouse named by a PostgreSQL URL.

`run_dbt()` makes one `dbtRunner` invocation. The dbt profile (`dbt_project/profiles.yml`) reads
only the `B2B_PG_*` environment variables, which are set from the URL for the duration of the call
and restored afterwards, so no credential is ever written to a file or put on a command line.

`build_marts()` is the nightly step: `dbt build` (seeds, models and their tests) for one as-of date.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

PROJECT_DIR_ENV = "B2B_DBT_PROJECT_DIR"
THREADS_ENV = "B2B_DBT_THREADS"
# dbt's threads when B2B_DBT_THREADS is unset (profiles.yml repeats it): the SQL runs in PostgreSQL,
# so a few more threads than cores keep both cores busy while dbt itself waits
DEFAULT_THREADS = 4
# dbt tests that the quality gate runs as they are, with severity block (the key checks of the core
# star): the nightly DAG leaves them to the gate rather than scan the same tables twice.
# tests/quality/test_suites.py holds each tagged test to its twin in expectations/core.yml.
GATE_CHECKED_TESTS = "tag:checked_by_gate"
ENV_HOST = "B2B_PG_HOST"
ENV_PORT = "B2B_PG_PORT"
ENV_USER = "B2B_PG_USER"
ENV_PASSWORD = "B2B_PG_PASSWORD"
ENV_DBNAME = "B2B_PG_DBNAME"
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


def dbt_threads() -> int:
    """How many models dbt builds at once: B2B_DBT_THREADS, else DEFAULT_THREADS."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive whole number, not {value!r}")
    return int(value)


def dbt_project_dir() -> Path:
    """The dbt project: env `B2B_DBT_PROJECT_DIR`, else `$B2B_PROJECT_DIR/dbt_project`, else this repository's."""
    override = os.environ.get(PROJECT_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    root = os.environ.get("B2B_PROJECT_DIR", "").strip()  # an installed package (the Docker image)
    if root:
        return Path(root).expanduser().resolve() / "dbt_project"
    # plugins/b2b_pipeline/transform/dbt_runner.py -> repository root
    return Path(__file__).resolve().parents[3] / "dbt_project"


def dsn_to_env(dsn: str) -> dict[str, str]:
    """The `B2B_PG_*` variables of the dbt profile for a PostgreSQL URL.

    Accepts `postgresql://user:password@host:port/dbname` and unix-socket URLs such as
    `postgresql://postgres:@/postgres?host=/tmp/pgdir` (or the host percent-encoded in the
    authority: `postgresql://%2Ftmp%2Fpgdir/postgres`). Query parameters `host`, `port`, `user`,
    `password` and `dbname` override the authority's values, as libpq does.
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
) -> DbtResult:
    """Run one dbt command in-process against the warehouse of `dsn` and return its result.

    `command` is dbt's argument list without the executable, e.g. `["build", "--select", "marts"]`.
    `vars` are passed as `--vars` (JSON). The project's `profiles.yml` reads the connection from the
    `B2B_PG_*` environment variables, set here from `dsn` for the duration of the call.
    `target_path` and `log_path` default to the project's `target/` and `logs/`; give other
    directories to keep concurrent invocations (tests, candidate builds) apart.

    Raises `DbtError` (listing each failed node and its message) when dbt does not succeed, unless
    `raise_on_failure` is false.
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

    env = dsn_to_env(dsn)
    if threads is not None:
        env[THREADS_ENV] = str(threads)

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


def build_marts(
    dsn: str,
    as_of_date: dt.date | str,
    *,
    reporting_currency: str = "RUB",
    core_schema: str = "core",
    marts_schema: str = "marts",
    select: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    full_refresh: bool = False,
    extra_vars: Mapping[str, Any] | None = None,
    project_dir: Path | None = None,
    target_path: Path | None = None,
    log_path: Path | None = None,
    threads: int | None = None,
) -> DbtResult:
    """Build the whole project for one as-of date: `dbt build` (seeds, models and their tests).

    `as_of_date` is the last UTC day counted (the cutoff is the next day, 00:00 UTC). `core_schema`
    and `marts_schema` name the schemas core and marts are built into (candidate schemas for a
    write-audit-publish swap). `full_refresh` rebuilds the incremental raw-version models from
    scratch. Raises `DbtError` when a model fails or a test of severity error fails.
    """
    day = as_of_date if isinstance(as_of_date, str) else as_of_date.isoformat()
    dt.date.fromisoformat(day)  # validate early, with a clear message
    vars_: dict[str, Any] = {
        "as_of_date": day,
        "reporting_currency": reporting_currency,
        "core_schema": core_schema,
        "marts_schema": marts_schema,
        **(extra_vars or {}),
    }
    command = ["build"]
    if select:
        command += ["--select", *select]
    if exclude:
        command += ["--exclude", *exclude]
    if full_refresh:
        command.append("--full-refresh")
    return run_dbt(
        command,
        dsn=dsn,
        vars=vars_,
        project_dir=project_dir,
        target_path=target_path,
        log_path=log_path,
        threads=threads,
    )
