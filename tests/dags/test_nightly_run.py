"""The real DAG end to end through `b2b run`: a night publishes, a re-run gives identical marts, and a
blocked night leaves the published marts exactly as they were (byte for byte)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.generate import generate_company
from fingerprint import fingerprint  # tests/fingerprint.py

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = dt.date(2026, 5, 31)
B2B = str(Path(sys.executable).with_name("b2b"))


def b2b_run(home: Path, dsn: str, as_of: dt.date, drop: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "B2B_HOME": str(home), "B2B_WAREHOUSE_DSN": dsn, **extra_env}
    return subprocess.run(
        [B2B, "run", "--date", as_of.isoformat(), "--source-dir", str(drop)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def test_publish_rerun_and_blocked_night(warehouse: str, tmp_path: Path) -> None:
    if "host=/" not in warehouse:  # three whole nights: once, on the embedded warehouse, is enough
        pytest.skip("the end-to-end nightly run is exercised on the embedded warehouse")
    home = tmp_path / "home"
    drop = tmp_path / "drop"
    generate_company(drop, seed=5, accounts=120, start=dt.date(2025, 6, 1), end=AS_OF)

    first = b2b_run(home, warehouse, AS_OF, drop)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Published" in first.stdout and "win rate" in first.stdout
    for task in ("extract_crm", "extract_billing", "quality_gate", "publish", "summary"):
        assert task in first.stdout
    published = fingerprint(warehouse)
    assert {"sales_funnel", "revenue_monthly", "retention_monthly", "customer_value"} <= set(published)
    assert all(not value.startswith("0:") for value in published.values()), published
    assert (home / "reports" / AS_OF.isoformat() / "quality.html").is_file()

    # idempotent: the same night again loads nothing new and publishes identical marts
    again = b2b_run(home, warehouse, AS_OF, drop)
    assert again.returncode == 0, again.stdout + again.stderr
    assert fingerprint(warehouse) == published

    # a bad night: deals in a stage that no stage row maps, and many malformed deals
    bad_day = AS_OF + dt.timedelta(days=1)
    folder = drop / "crm" / bad_day.isoformat()
    folder.mkdir(parents=True)
    lines = ["deal_id,account_id,stage_id,amount,currency,status,created_at,updated_at"]
    lines += [f"X{i},{i},no_such_stage,100,RUB,open,{bad_day}T10:00:00Z,{bad_day}T10:00:00Z" for i in range(30)]
    lines += [f"Y{i},{i},no_such_stage,-5,RUB,open,{bad_day}T10:00:00Z,{bad_day}T10:00:00Z" for i in range(300)]
    (folder / "deals.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    blocked = b2b_run(home, warehouse, bad_day, drop)
    assert blocked.returncode == 2, blocked.stdout + blocked.stderr
    assert "Blocked by the quality gate" in blocked.stderr
    assert "quarantine" in blocked.stderr or "stage" in blocked.stderr
    assert fingerprint(warehouse) == published  # the published marts, byte for byte
    with psycopg.connect(warehouse) as conn:  # the candidate stays for inspection
        assert conn.execute("select count(*) from pg_tables where schemaname = 'marts__candidate'").fetchone()[0] > 0

    # a night whose dbt build fails (a model that divides by zero, in a copy of the project):
    # the one dbt invocation fails, every model task after it does not run, the night fails
    # (exit 1, not "blocked") and the published marts stay as they were
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "zz_broken.sql").write_text("select 1 / 0 as x\n")
    broken = b2b_run(home, warehouse, bad_day, drop, B2B_DBT_PROJECT_DIR=str(project))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "dbt.dbt_producer_watcher" in broken.stdout + broken.stderr
    # the cause on one line of the output, first the task whose error it is
    failed = [line for line in broken.stderr.splitlines() if line.startswith("Failed")]
    assert len(failed) == 1 and failed[0].startswith("Failed: dbt.dbt_producer_watcher: "), broken.stderr
    assert "Blocked" not in broken.stderr
    night_log = (home / "logs" / f"night-{bad_day.isoformat()}.log").read_text()
    assert "zz_broken" in night_log and "division by zero" in night_log
    assert fingerprint(warehouse) == published
