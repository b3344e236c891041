"""The connection of the night's API source: the Airflow connection `b2b_<source>`, else `B2B_<SOURCE>_*`."""

from __future__ import annotations

import logging

from b2b_pipeline.config import billing_source, crm_source
from b2b_pipeline.sources.registry import API_SOURCES, ApiConnection, SourceConfigError, connection_from_environment

log = logging.getLogger(__name__)


def connection_id(source: str) -> str:
    return f"b2b_{source}"


def source_of(system: str) -> str:
    """The configured source of a source system (`crm`, `billing`): files or an API."""
    return crm_source() if system == "crm" else billing_source()


def api_connection(system: str) -> ApiConnection | None:
    """How tonight's `system` (crm, billing) is reached: None for the file drop, else the connection
    of its API source. An Airflow connection `b2b_<source>` (conn_type http: host the base URL,
    password the token, extra the connector's options) wins over the environment."""
    source = source_of(system)
    if source not in API_SOURCES:
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    try:
        conn = BaseHook.get_connection(connection_id(source))
    except AirflowNotFoundException:
        conn = None
    except AirflowRuntimeError as exc:  # inside a task, the supervisor's answer
        if "CONNECTION_NOT_FOUND" not in str(exc):
            raise
        conn = None
    if conn is not None and conn.host:
        host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        if conn.port and "://" not in conn.host:
            host += f":{conn.port}"
        options = {k: str(v) for k, v in (conn.extra_dejson or {}).items()}
        secret = (conn.password or "").strip()  # a pasted token's newline would make a malformed header
        return ApiConnection(source, host, f"Airflow connection {connection_id(source)}", secret, options)
    found = connection_from_environment(source)
    if found is None:
        raise SourceConfigError(
            f"{system} is read from {source} (B2B_{system.upper()}_SOURCE), but neither the Airflow connection "
            f"{connection_id(source)} nor B2B_{source.upper()}_URL is defined"
        )
    return found
