"""Whole nights with the CRM read from an API, through the real DAG: `b2b demo --crm amocrm` (the demo
starts the fake itself, and reads it even when a connection to a real account is defined) publishes;
then a night whose token is wrong exits 1 with a clear error naming the connection, never the token,
and leaves the published marts exactly as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.cli import DEMO_END
from b2b_pipeline.night import cutoff
from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM
from fingerprint import fingerprint  # tests/fingerprint.py

pytestmark = [pytest.mark.integration, pytest.mark.slow]

B2B = str(Path(sys.executable).with_name("b2b"))
ACCOUNTS = 12
TOKEN = "night-token-3e8a0b"


def b2b(home: Path, dsn: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    inherited = ("B2B_CRM_SOURCE", "B2B_AMOCRM_", "B2B_BITRIX24_", "AIRFLOW_CONN_B2B_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(inherited)}
    env |= {"B2B_HOME": str(home), "B2B_WAREHOUSE_DSN": dsn, "COLUMNS": "200", **extra_env}
    return subprocess.run([B2B, *args], env=env, capture_output=True, text=True, timeout=1200, check=False)


def test_demo_through_the_amocrm_fake_then_a_wrong_token(warehouse: str, tmp_path: Path) -> None:
    if "host=/" not in warehouse:  # whole nights: once, on the embedded warehouse, is enough
        pytest.skip("whole API nights are exercised on the embedded warehouse")
    home = tmp_path / "home"

    # a connection to a "real" account already defined: the demo must read its own fake, never that one
    real = json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9", "password": "a-real-token"})
    demo = b2b(home, warehouse, "demo", "--crm", "amocrm", "--accounts", str(ACCOUNTS), AIRFLOW_CONN_B2B_AMOCRM=real)
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out
    assert "local fake of amoCRM" in out and "Published" in out
    assert "requests at up to" in out and "documented 7 a second" in out
    assert "Raw layer: raw_amocrm" in out and "leads" in out
    published = fingerprint(warehouse)
    assert {"sales_funnel", "sales_performance_monthly", "revenue_monthly"} <= set(published)
    with psycopg.connect(warehouse) as conn:
        leads = conn.execute("select count(*) from raw_amocrm.leads").fetchone()[0]
        crm_files = conn.execute("select count(*) from raw_files.file_loads where system = 'crm'").fetchone()[0]
    assert leads > 0  # the CRM came through the API ...
    assert crm_files == 0  # ... and not from the drop's crm/ files

    drop = home / "demo" / "drop"
    with FakeAmoCRM(drop, token=TOKEN, now=cutoff(DEMO_END) - timedelta(seconds=1)) as fake:
        wrong = "wrong-" + TOKEN[::-1]
        night = b2b(
            home,
            warehouse,
            "run",
            "--date",
            DEMO_END.isoformat(),
            "--source-dir",
            str(drop),
            B2B_CRM_SOURCE="amocrm",
            B2B_AMOCRM_URL=fake.base_url,
            B2B_AMOCRM_TOKEN=wrong,
        )
    out = night.stdout + night.stderr
    assert night.returncode == 1, out
    assert "B2B_AMOCRM_URL" in out and "token was refused" in out, out  # the connection named, and why
    assert out.count("failed   ") == 1, out  # no retry: a refused token is not healed by waiting
    logs = "".join(p.read_text(errors="replace") for p in home.rglob("*.log"))
    for secret in (wrong, TOKEN):
        assert secret not in out and secret not in logs
    assert fingerprint(warehouse) == published  # nothing published
