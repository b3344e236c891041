"""Whole nights with the CRM and billing read from APIs, through the real DAG: `b2b demo --crm hubspot
--billing stripe` (the demo starts the fakes itself, and reads them even when a connection to a real
account is defined) publishes with no file read but the fx rates; then a night whose amoCRM token is
wrong exits 1 with a clear error naming the connection, never the token, and leaves the published
marts exactly as they were."""

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
    inherited = ("B2B_CRM_SOURCE", "B2B_BILLING_SOURCE", "B2B_AMOCRM_", "B2B_BITRIX24_", "B2B_HUBSPOT_")
    inherited += ("B2B_STRIPE_", "AIRFLOW_CONN_B2B_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(inherited)}
    env |= {"B2B_HOME": str(home), "B2B_WAREHOUSE_DSN": dsn, "COLUMNS": "200", **extra_env}
    return subprocess.run([B2B, *args], env=env, capture_output=True, text=True, timeout=1200, check=False)


def test_demo_through_hubspot_and_stripe_fakes_then_a_wrong_token(warehouse: str, tmp_path: Path) -> None:
    if "host=/" not in warehouse:  # whole nights: once, on the embedded warehouse, is enough
        pytest.skip("whole API nights are exercised on the embedded warehouse")
    home = tmp_path / "home"

    # connections to "real" accounts already defined: the demo must read its own fakes, never those
    real = json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9", "password": "a-real-token"})
    demo = b2b(
        home,
        warehouse,
        "demo",
        "--crm",
        "hubspot",
        "--billing",
        "stripe",
        "--accounts",
        str(ACCOUNTS),
        AIRFLOW_CONN_B2B_HUBSPOT=real,
        AIRFLOW_CONN_B2B_STRIPE=real,
    )
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out
    assert "CRM from a local fake of HubSpot" in out and "billing from a local fake of Stripe" in out
    assert "Published" in out
    assert "documented 10 a second" in out and "documented 25 a second" in out
    assert "Raw layer: raw_hubspot" in out and "Raw layer: raw_stripe" in out
    published = fingerprint(warehouse)
    assert {"sales_funnel", "sales_performance_monthly", "revenue_monthly"} <= set(published)
    with psycopg.connect(warehouse) as conn:
        deals = conn.execute("select count(*) from raw_hubspot.deals").fetchone()[0]
        invoices = conn.execute("select count(*) from raw_stripe.invoices").fetchone()[0]
        files = conn.execute("select array_agg(distinct entity) from raw_files.file_loads").fetchone()[0]
        revenue = conn.execute("select sum(revenue) from marts.revenue_monthly").fetchone()[0]
    assert deals > 0 and invoices > 0  # the CRM and billing came through the APIs ...
    assert files == ["fx_rates"]  # ... and of the drop only the rates were read
    assert revenue > 0

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
