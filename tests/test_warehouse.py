"""The embedded warehouse runs with the settings of `embedded_settings()`, applied once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.warehouse import embedded_server, embedded_settings

pytestmark = pytest.mark.integration


def _settings(dsn: str) -> tuple[dict[str, str], object]:
    with psycopg.connect(dsn) as conn:
        names = list(embedded_settings())
        query = "select name, current_setting(name) from pg_settings where name = any(%s)"
        values = dict(conn.execute(query, (names,)))
        started = conn.execute("select pg_postmaster_start_time()").fetchone()[0]  # type: ignore[index]
    return values, started


def test_embedded_server_runs_with_the_warehouse_settings(embedded_admin_dsn: str) -> None:
    values, _ = _settings(embedded_admin_dsn)
    assert values == embedded_settings()
    assert values["wal_level"] == "minimal"


def test_embedded_server_applies_its_settings_once_and_restores_them(tmp_path: Path) -> None:
    server = embedded_server(tmp_path / "pgdata", cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        values, started = _settings(dsn)
        assert values == embedded_settings()  # initdb's wal_level is replica: it was restarted

        embedded_server(tmp_path / "pgdata", cleanup_mode="delete")  # nothing to change: no restart
        assert _settings(dsn) == (values, started)

        with psycopg.connect(dsn, autocommit=True) as conn:  # changed by hand, not yet in effect: set back
            conn.execute("alter system set max_wal_size = '1GB'")
            conn.execute("alter system set wal_level = 'replica'")
        embedded_server(tmp_path / "pgdata", cleanup_mode="delete")
        assert _settings(dsn) == (values, started)
        with psycopg.connect(dsn) as conn:
            configured = dict(
                conn.execute(
                    "select distinct on (name) name, setting from pg_file_settings "
                    "where name in ('wal_level', 'max_wal_size') order by name, seqno desc"
                )
            )
        assert configured == {"wal_level": "minimal", "max_wal_size": "4GB"}
    finally:
        server.cleanup()


def test_shared_buffers_follow_the_machine_memory() -> None:
    assert embedded_settings(16 * 2**30)["shared_buffers"] == "1GB"
    assert embedded_settings(4 * 2**30)["shared_buffers"] == "256MB"
