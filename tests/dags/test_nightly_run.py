"""The real DAG end to end through `b2b run`: a night publishes, a re-run gives identical marts, and a
blocked night leaves the published marts exactly as they were (byte for byte)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.config import dbt_project_dir
from fingerprint import fingerprint  # tests/fingerprint.py
from nights import AS_OF, ReferenceNight, b2b_run, bad_night  # tests/nights.py

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_publish_rerun_and_blocked_night(reference_night: ReferenceNight, tmp_path: Path) -> None:
    first, home, warehouse = reference_night.run, reference_night.home, reference_night.dsn
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Published" in first.stdout and "win rate" in first.stdout
    for task in ("extract_crm", "extract_billing", "quality_gate", "publish", "summary"):
        assert task in first.stdout
    published = reference_night.marts
    assert fingerprint(warehouse) == published
    assert {"sales_funnel", "revenue_monthly", "retention_monthly", "customer_value"} <= set(published)
    assert all(not value.startswith("0:") for value in published.values()), published
    assert (home / "reports" / AS_OF.isoformat() / "quality.html").is_file()
    # the gate checked the freshness of the tables the night read (dbt source freshness)
    gate = json.loads((home / "reports" / AS_OF.isoformat() / "gate.json").read_text())
    freshness = {c["name"]: c["status"] for c in gate["checks"] if c["name"].startswith("raw.source_freshness.")}
    assert freshness.get("raw.source_freshness.files.deals") == "passed", freshness

    # idempotent: the same night again loads nothing new and publishes identical marts
    again = b2b_run(home, warehouse, AS_OF, reference_night.drop)
    assert again.returncode == 0, again.stdout + again.stderr
    assert fingerprint(warehouse) == published

    # a bad night: deals in a stage that no stage row maps, and many malformed deals
    drop = tmp_path / "drop"  # the reference company's drop stays as it is for the other tests
    shutil.copytree(reference_night.drop, drop)
    bad_day = AS_OF + dt.timedelta(days=1)
    bad_night(drop, bad_day)
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
    # (without a contract: every mart has one, and a mart without its columns' types fails on that first)
    (project / "models" / "marts" / "zz_broken.sql").write_text(
        "{{ config(contract={'enforced': false}) }}\nselect 1 / 0 as x\n"
    )
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
