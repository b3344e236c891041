"""The warehouse as an Airflow connection and back, without importing Airflow (its config is read at import)."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from b2b_pipeline.transform.dbt_runner import (
    ENV_DBNAME,
    ENV_HOST,
    ENV_PASSWORD,
    ENV_PORT,
    ENV_SSLMODE,
    ENV_USER,
    dsn_to_env,
)

WAREHOUSE_CONN_ID = "b2b_warehouse"


def connection_json(dsn: str) -> str:
    """The `AIRFLOW_CONN_B2B_WAREHOUSE` value (JSON form) for a warehouse URL, unix sockets included."""
    env = dsn_to_env(dsn)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": env[ENV_HOST],
            "port": int(env[ENV_PORT]),
            "login": env[ENV_USER],
            "password": env[ENV_PASSWORD],
            "schema": env[ENV_DBNAME],
            "extra": {"sslmode": env[ENV_SSLMODE]},
        }
    )


def dsn_from_fields(
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    dbname: str,
    sslmode: str | None = None,
) -> str:
    """A PostgreSQL URL from connection fields (and the `sslmode` of its extra, when it has one); a
    host that is a directory is a unix socket."""
    user = quote(login or "", safe="")
    auth = f"{user}:{quote(password or '', safe='')}@" if user else ""
    query = {"sslmode": sslmode} if sslmode else {}
    if host and host.startswith("/"):
        socket = {"host": host, "port": port or 5432, **query}
        return f"postgresql://{auth}/{quote(dbname, safe='')}?{urlencode(socket)}"
    suffix = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{auth}{host or 'localhost'}:{port or 5432}/{quote(dbname, safe='')}{suffix}"
