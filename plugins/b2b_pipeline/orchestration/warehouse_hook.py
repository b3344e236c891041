"""The Airflow hook of the warehouse connection (`b2b_warehouse`)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from b2b_pipeline.orchestration.connection import WAREHOUSE_CONN_ID, dsn_from_fields


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
        sslmode = (conn.extra_dejson or {}).get("sslmode")
        return dsn_from_fields(conn.host, conn.port, conn.login, conn.password, conn.schema, sslmode)
