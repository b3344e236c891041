"""The warehouse as an Airflow connection (`b2b_warehouse`), and back to a PostgreSQL URL."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from airflow.sdk import BaseHook

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


class WarehouseHook(BaseHook):
    """Reads the warehouse connection and hands the package a PostgreSQL URL.

    The package's own code (loader, gate, publish) takes URLs; this hook is the one place
    that turns an Airflow connection into one. Unix-socket hosts (the embedded warehouse)
    are supported, which the Postgres provider's `get_uri()` does not do.
    """

    conn_name_attr = "warehouse_conn_id"
    default_conn_name = WAREHOUSE_CONN_ID
    conn_type = "postgres"
    hook_name = "B2B warehouse"

    def __init__(self, warehouse_conn_id: str = WAREHOUSE_CONN_ID) -> None:
        super().__init__()
        self.warehouse_conn_id = warehouse_conn_id

    def get_dsn(self) -> str:
        """The warehouse URL of the connection."""
        conn = self.get_connection(self.warehouse_conn_id)
        if not conn.schema:
            raise ValueError(f"connection {self.warehouse_conn_id!r} names no database (its 'schema' field)")
        return dsn_from_fields(conn.host, conn.port, conn.login, conn.password, conn.schema)
