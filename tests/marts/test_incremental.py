"""Incremental nights: a night that adds a dated change folder types only the new files, recomputes
the latest versions of only the records it touched, and its staging, core and marts equal, byte for
byte, those of a full rebuild of the same night; so do the staging tables of a rerun of an older
night (the as-of date moving back) and of a night after a jump forward."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.generate import generate_company
from b2b_pipeline.nightly import dbt_vars
from b2b_pipeline.transform import run_dbt

pytestmark = [pytest.mark.integration, pytest.mark.slow]

END = dt.date(2026, 3, 31)


STAGING = "path:models/staging"


def build(dsn: str, as_of: dt.date, tmp_path: Path, *, full_refresh: bool = False, select: str | None = None):
    command = ["build", "--full-refresh"] if full_refresh else ["build"]
    if select:
        command += ["--select", select]
    result = run_dbt(command, dsn=dsn, vars=dbt_vars(as_of), target_path=tmp_path / "target", log_path=tmp_path / "l")
    assert result.success
    return result


ALL_LAYERS = ("staging", "core__candidate", "marts__candidate")


def fingerprint(dsn: str, schemas: tuple[str, ...] = ALL_LAYERS) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "select schemaname, tablename from pg_tables where schemaname = any(%s) "
            "and (schemaname <> 'staging' or tablename like 'stg\\_%%')",
            (list(schemas),),
        ).fetchall()
        return {
            f"{schema}.{table}": conn.execute(
                f"select count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' order by t::text)), '') "
                f'from "{schema}"."{table}" t'
            ).fetchone()[0]
            for schema, table in sorted(tables)
        }


def rows_inserted(result, model: str) -> int:
    """Rows the (incremental) model wrote in this invocation, from dbt's adapter response."""
    for node in result.raw.results:
        if node.node.name == model:
            return int(node.adapter_response.get("rows_affected", -1))
    raise AssertionError(f"{model} did not run")


def test_nightly_increments_equal_a_full_rebuild(warehouse: str, tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    generate_company(generated, seed=3, accounts=150, start=dt.date(2025, 3, 1), end=END, nightly_days=2)
    days = [END - dt.timedelta(days=1), END]
    drop = tmp_path / "drop"
    shutil.copytree(generated, drop, ignore=shutil.ignore_patterns(*(d.isoformat() for d in days)))

    load_drop(warehouse, drop)
    build(warehouse, days[0] - dt.timedelta(days=1), tmp_path)
    for day in days:
        for system in ("crm", "billing"):
            shutil.copytree(generated / system / day.isoformat(), drop / system / day.isoformat())
        report = load_drop(warehouse, drop)
        new_deal_rows = sum(f.rows_loaded for f in report.files if f.entity == "deals" and f.status == "loaded")
        incremental = build(warehouse, day, tmp_path)
        # the typed-versions model took only the night's new deal rows, and the latest-versions
        # model recomputed only the deals the night touched, not every deal
        assert rows_inserted(incremental, "base_files__deals") == new_deal_rows
        assert 0 < rows_inserted(incremental, "stg_files__deals") < deal_count(warehouse) / 2
        nightly = fingerprint(warehouse)
        build(warehouse, day, tmp_path, full_refresh=True)
        assert fingerprint(warehouse) == nightly, day
    assert any(name.startswith("marts__candidate.") for name in nightly)
    assert any(name.startswith("staging.stg_files__") for name in nightly)

    # a rerun of an older night (versions updated since then fall behind the cutoff again), then a
    # jump forward past it: each equal to a full rebuild of its night
    for as_of in (END - dt.timedelta(days=20), END):
        build(warehouse, as_of, tmp_path, select=STAGING)
        moved = fingerprint(warehouse, ("staging",))
        build(warehouse, as_of, tmp_path, select=STAGING, full_refresh=True)
        assert fingerprint(warehouse, ("staging",)) == moved, as_of

    # a table a crash emptied (the staging tables are unlogged) and a comment that is not the
    # model's state: both models are rebuilt in full, not patched
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("truncate staging.stg_files__deals")
        conn.execute("comment on table staging.stg_files__accounts is 'b2b latest versions: {\"as_of_date\": 1}'")
    rebuilt = build(warehouse, END, tmp_path, select=STAGING)
    assert rows_inserted(rebuilt, "stg_files__deals") == deal_count(warehouse) > 0
    assert fingerprint(warehouse, ("staging",)) == moved


def deal_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select count(*) from staging.stg_files__deals").fetchone()[0]
