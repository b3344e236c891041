"""Incremental nights: a night that adds a dated change folder types only the new files, recomputes
the latest versions of only the records it touched (and the intermediate rows of only those and of
the events that crossed the cutoff), and its staging, intermediate, core and marts equal, byte for
byte, those of a full rebuild of the same night; so do the staging and intermediate tables of a
rerun of an older night (the as-of date moving back) and of a night after a jump forward."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.generate import generate_company
from b2b_pipeline.transform import night_vars, run_dbt

pytestmark = [pytest.mark.integration, pytest.mark.slow]

END = dt.date(2026, 3, 31)


STAGING = ["path:models/staging"]
STAGING_AND_INTERMEDIATE = ["path:models/staging", "path:models/intermediate"]


def build(
    dsn: str,
    as_of: dt.date,
    tmp_path: Path,
    *,
    full_refresh: bool = False,
    select: list[str] | None = None,
    tests: bool = True,
):
    """`dbt build` (or `dbt run`, without tests: a selection can leave what a test compares stale)."""
    command = ["build" if tests else "run"] + (["--full-refresh"] if full_refresh else [])
    if select:
        command += ["--select", *select]
    result = run_dbt(command, dsn=dsn, vars=night_vars(as_of), target_path=tmp_path / "target", log_path=tmp_path / "l")
    assert result.success
    return result


ALL_LAYERS = ("staging", "intermediate", "core__candidate", "marts__candidate")
LOWER_LAYERS = ("staging", "intermediate")
FCT_ACTIVITIES = "core__candidate.fct_activities"
# the core models a night patches rather than rebuilds
PATCHED_CORE = ("fct_activities", "fct_deal_stage_history", "dim_contacts")


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
    # a meeting planned ahead: recorded (updated) 25 days before the end, held 10 days before it. Only
    # its occurred_at, not its updated_at, lies between the cutoffs of the reruns below
    planned = drop / "crm" / (END - dt.timedelta(days=26)).isoformat()
    planned.mkdir(exist_ok=True)
    (planned / "activities.csv").write_text(
        "activity_id,channel,occurred_at,updated_at,deal_id\n"
        f"planned-1,meeting,{END - dt.timedelta(days=10)}T10:00:00Z,{END - dt.timedelta(days=25)}T09:00:00Z,\n"
    )
    # an activity that names a deal the CRM exports only on the last night, and one whose deal that
    # night deletes: the activities themselves do not change, their deal appears and disappears
    deals_header, deal_template, dialect = deal_rows(generated / "crm" / days[1].isoformat() / "deals.csv")
    held = END - dt.timedelta(days=20)
    with (planned / "activities.csv").open("a") as f:
        f.write(f"orphan-1,call,{held}T10:00:00Z,{held}T10:00:00Z,late-deal-1\n")
        f.write(f"doomed-1,call,{held}T11:00:00Z,{held}T11:00:00Z,doomed-deal-1\n")
    write_deals(
        planned / "deals.csv",
        deals_header,
        dialect,
        [deal_like(deal_template, "doomed-deal-1", END - dt.timedelta(days=40), END - dt.timedelta(days=26))],
    )
    write_deals(
        generated / "crm" / days[1].isoformat() / "deals.csv",
        deals_header,
        dialect,
        [
            deal_like(deal_template, "late-deal-1", END - dt.timedelta(days=30), END),
            deal_like(deal_template, "doomed-deal-1", END - dt.timedelta(days=40), END, is_deleted="true"),
        ],
        append=True,
    )
    # and a payment scheduled ahead: an invoice marked paid 25 days before the end, paid 10 days before it
    first_customer = (generated / "billing" / "customers.csv").read_text(encoding="utf-8-sig").splitlines()[1]
    customer = re.split("[;,]", first_customer)[0]
    (planned.parent.parent / "billing" / planned.name).mkdir(exist_ok=True)
    (planned.parent.parent / "billing" / planned.name / "invoices.csv").write_text(
        "invoice_id,customer_id,status,currency,amount_total,amount_paid,issued_at,paid_at,updated_at\n"
        f"planned-1,{customer},paid,RUB,1000.00,1000.00,{END - dt.timedelta(days=30)}T10:00:00Z,"
        f"{END - dt.timedelta(days=10)}T10:00:00Z,{END - dt.timedelta(days=25)}T09:00:00Z\n"
    )

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
        for model in ("int_activities_unioned", "int_deal_stage_history_unioned", "int_invoices_unioned"):
            assert 0 < rows_inserted(incremental, model) < row_count(warehouse, f"intermediate.{model}") / 2, model
        # the core tables carried over in the candidate schema were patched, not rebuilt; the deal of an
        # unchanged activity appeared and disappeared with its deal's records
        for model in PATCHED_CORE:
            assert 0 < rows_inserted(incremental, model) < row_count(warehouse, f"core__candidate.{model}") / 2, model
        last_night = day == days[-1]
        assert activity_deal(warehouse, "orphan-1") == ("late-deal-1", "files:late-deal-1" if last_night else None)
        assert activity_deal(warehouse, "doomed-1") == ("doomed-deal-1", None if last_night else "files:doomed-deal-1")
        nightly = fingerprint(warehouse)
        build(warehouse, day, tmp_path, full_refresh=True)
        assert fingerprint(warehouse) == nightly, day
    assert any(name.startswith("marts__candidate.") for name in nightly)
    assert any(name.startswith("staging.stg_files__") for name in nightly)
    assert "intermediate.int_activities_unioned" in nightly

    # a rerun of an older night (versions updated since then fall behind the cutoff again), then a
    # jump forward past it: each equal to a full rebuild of its night
    # (and so are the patched core tables)
    moves = [*STAGING_AND_INTERMEDIATE, "dim_stages", *PATCHED_CORE]
    for as_of in (END - dt.timedelta(days=20), END):
        patched = build(warehouse, as_of, tmp_path, select=moves, tests=False)
        for model in PATCHED_CORE:
            assert 0 < rows_inserted(patched, model) < row_count(warehouse, f"core__candidate.{model}"), model
        moved = fingerprint(warehouse, LOWER_LAYERS)
        moved_core = fingerprint(warehouse, ("core__candidate",))
        build(warehouse, as_of, tmp_path, select=moves, full_refresh=True, tests=False)
        assert fingerprint(warehouse, LOWER_LAYERS) == moved, as_of
        assert fingerprint(warehouse, ("core__candidate",)) == moved_core, as_of
    moved_fact = moved_core[FCT_ACTIVITIES]

    # the core fact's lineage changed since its last run (as if: a model it descends from was edited,
    # so the recorded checksum differs): it is rebuilt in full, then patched again
    with psycopg.connect(warehouse, autocommit=True) as conn:
        comment = conn.execute(f"select obj_description('{FCT_ACTIVITIES}'::regclass)").fetchone()[0]
        changed = re.sub('"checksum" ?: ?"[^"]*"', '"checksum": "another lineage"', comment)
        assert changed != comment
        conn.execute(sql.SQL("comment on table {} is {}").format(sql.SQL(FCT_ACTIVITIES), sql.Literal(changed)))
    # and it lacks the index it declares (as does a table carried over from the star of an older
    # version, which dbt did not create with it): the rebuild creates it, and so does a patch
    drop_indexes(warehouse, FCT_ACTIVITIES)
    analyzed = analyze_count(warehouse, FCT_ACTIVITIES)
    relineaged = build(warehouse, END, tmp_path, select=["fct_activities"])
    assert rows_inserted(relineaged, "fct_activities") == row_count(warehouse, FCT_ACTIVITIES)
    assert index_definitions(warehouse, FCT_ACTIVITIES) == ["btree (activity_key)"]
    # rebuilt, it was analyzed; patched with no change, it is not sampled again
    assert analyze_count(warehouse, FCT_ACTIVITIES) == analyzed + 1
    drop_indexes(warehouse, FCT_ACTIVITIES)
    assert rows_inserted(build(warehouse, END, tmp_path, select=["fct_activities"]), "fct_activities") == 0
    assert index_definitions(warehouse, FCT_ACTIVITIES) == ["btree (activity_key)"]
    assert analyze_count(warehouse, FCT_ACTIVITIES) == analyzed + 1
    assert fingerprint(warehouse, ("core__candidate",))[FCT_ACTIVITIES] == moved_fact

    # an intermediate model built for another night than the staging model it reads is rebuilt in
    # full (it cannot be patched from staging rows of another cutoff), and so is it again on the
    # next night, when both are current: then it is patched as before
    older = END - dt.timedelta(days=5)
    stale = build(warehouse, older, tmp_path, select=["path:models/intermediate"])
    total = row_count(warehouse, "intermediate.int_activities_unioned")
    assert rows_inserted(stale, "int_activities_unioned") == total > 0
    current = build(warehouse, END, tmp_path, select=STAGING_AND_INTERMEDIATE)
    assert rows_inserted(current, "int_activities_unioned") == row_count(
        warehouse, "intermediate.int_activities_unioned"
    )
    assert fingerprint(warehouse, LOWER_LAYERS) == moved
    again = build(warehouse, END, tmp_path, select=STAGING_AND_INTERMEDIATE)
    assert rows_inserted(again, "int_activities_unioned") == 0
    assert fingerprint(warehouse, LOWER_LAYERS) == moved
    # the staging model's SQL changed since the intermediate model's last run (as if: its recorded
    # checksum differs): the intermediate model is rebuilt in full, not patched
    with psycopg.connect(warehouse, autocommit=True) as conn:
        comment = conn.execute("select obj_description('intermediate.int_activities_unioned'::regclass)").fetchone()[0]
        assert '"upstream_checksum"' in comment
        changed = re.sub('"upstream_checksum" ?: ?"[^"]*"', '"upstream_checksum": "an older SQL"', comment)
        conn.execute(sql.SQL("comment on table intermediate.int_activities_unioned is {}").format(sql.Literal(changed)))
    rebuilt_int = build(warehouse, END, tmp_path, select=STAGING_AND_INTERMEDIATE)
    assert rows_inserted(rebuilt_int, "int_activities_unioned") == row_count(
        warehouse, "intermediate.int_activities_unioned"
    )
    assert fingerprint(warehouse, LOWER_LAYERS) == moved

    # a table a crash emptied (the staging tables are unlogged) and a comment that is not the
    # model's state: both models are rebuilt in full, not patched
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("truncate staging.stg_files__deals")
        conn.execute("comment on table staging.stg_files__accounts is 'b2b latest versions: {\"as_of_date\": 1}'")
    rebuilt = build(warehouse, END, tmp_path, select=STAGING)
    assert rows_inserted(rebuilt, "stg_files__deals") == deal_count(warehouse) > 0
    assert fingerprint(warehouse, ("staging",)) == {k: v for k, v in moved.items() if k.startswith("staging.")}


def deal_rows(path: Path) -> tuple[list[str], dict[str, str], type[csv.Dialect]]:
    """The header of a generated deals file, its first deal (a template) and its CSV dialect."""
    text = path.read_bytes().decode("utf-8-sig")

    class Dialect(csv.excel):
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;").delimiter
        lineterminator = "\r\n" if "\r\n" in text[:4096] else "\n"

    rows = csv.DictReader(io.StringIO(text), dialect=Dialect)
    return list(rows.fieldnames or []), next(rows), Dialect


def deal_like(template: dict[str, str], deal_id: str, created: dt.date, updated: dt.date, **changes: str) -> dict:
    """An open deal shaped like `template`, created and last updated on the given days."""
    return {
        **template,
        "deal_id": deal_id,
        "status": "open",
        "closed_at": "",
        "lost_reason": "",
        "created_at": f"{created}T08:00:00Z",
        "updated_at": f"{updated}T12:00:00Z",
        "is_deleted": "false",
        **changes,
    }


def write_deals(path: Path, header: list[str], dialect: type[csv.Dialect], deals: list[dict], append: bool = False):
    """Deals in the dialect of a generated file: appended to such a file, or a new file."""
    with path.open("a" if append else "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, dialect=dialect)
        if not append:
            writer.writeheader()
        writer.writerows(deals)


def activity_deal(dsn: str, activity_id: str) -> tuple:
    """(deal_id, deal_key) of an activity in the candidate fct_activities."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select deal_id, deal_key from core__candidate.fct_activities where activity_id = %s", (activity_id,)
        ).fetchone()


def deal_count(dsn: str) -> int:
    return row_count(dsn, "staging.stg_files__deals")


def index_definitions(dsn: str, table: str) -> list[str]:
    """The indexes of `table`, each as its access method and columns."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') from pg_index "
            "where indrelid = %s::regclass order by 1",
            (table,),
        ).fetchall()
    return [row[0] for row in rows]


def drop_indexes(dsn: str, table: str) -> None:
    """Drop every index of `table` (as if an older version had created it without them)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = conn.execute(
            "select indexrelid::regclass::text from pg_index where indrelid = %s::regclass", (table,)
        ).fetchall()
        assert names, f"{table} has no index"
        for (name,) in names:
            conn.execute(sql.SQL("drop index {}").format(sql.SQL(name)))


def analyze_count(dsn: str, table: str) -> int:
    """How many times `table` was analyzed by an ANALYZE statement (autovacuum's analyzes not counted)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select analyze_count from pg_stat_user_tables where relid = %s::regclass", (table,)
        ).fetchone()[0]


def row_count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]
