"""The warehouse as an Airflow connection and back, without importing Airflow (its config is read at import)."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from b2b_pipeline.transform.dbt_runner import dsn_to_env

WAREHOUSE_CONN_ID = "b2b_warehouse"


def connection_json(dsn: str) -> str:
    """The `AIRFLOW_CONN_B2B_WAREHOUSE` value (JSON form) for a warehouse URL, unix sockets included."""
    env = dsn_to_env(dsn)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": env["B2B_PG_HOST"],
            "port": int(env["B2B_PG_PORT"]),
            "login": env["B2B_PG_USER"],
            "password": env["B2B_PG_PASSWORD"],
            "schema": env["B2B_PG_DBNAME"],
        }
    )


def dsn_from_fields(host: str | None, port: int | None, login: str | None, password: str | None, dbname: str) -> str:
    """A PostgreSQL URL from connection fields; a host that is a directory is a unix socket."""
    user = quote(login or "", safe="")
    auth = f"{user}:{quote(password or '', safe='')}@" if user else ""
    if host and host.startswith("/"):
        return f"postgresql://{auth}/{quote(dbname, safe='')}?{urlencode({'host': host, 'port': port or 5432})}"
    return f"postgresql://{auth}{host or 'localhost'}:{port or 5432}/{quote(dbname, safe='')}"
