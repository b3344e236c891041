"""The dbt conventions of the project: contracts on core and marts, exposures, unit tests.

- Every core and mart model has an enforced contract, and a breaking change of a mart (a renamed or removed
  column, a changed type) fails the build with dbt's contract error, naming the column: checked in a copy
  of the project against the warehouse of the session's reference night.
- The exposure of the nightly report names exactly the marts the reporting package reads; the one of the
  BI dashboards names every mart.
- dbt's unit tests run here, once, against the reference night's warehouse (they need the relations of
  their inputs); the night's dbt invocations leave them out.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from b2b_pipeline.transform import dbt_runner, run_dbt
from nights import AS_OF, ReferenceNight  # tests/nights.py

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT = ROOT / "dbt_project"
MARTS = DBT_PROJECT / "models" / "marts"
REPORTING = ROOT / "plugins" / "b2b_pipeline" / "reporting"
EXPOSURES = MARTS / "_marts__exposures.yml"
UNIT_TESTS = {
    "stg_files__deals_uses_the_latest_version_before_the_cutoff",
    "int_deals_stages_reached_counts_skipped_stages_as_passed",
    "int_fx_rates_filled_takes_the_latest_earlier_rate",
    "int_fx_rates_filled_converts_through_the_base_currency",
    "int_accounts_unified_merges_matched_billing_customers",
}
# where the broken marts would be built, were their contracts not to stop them: never the published schema
SCRATCH_SCHEMA = "b2b_contract_check"

_REF = re.compile(r"""^ref\(\s*['"](\w+)['"]\s*\)$""")


def mart_names() -> set[str]:
    return {path.stem for path in MARTS.glob("*.sql")}


def core_names() -> set[str]:
    return {path.stem for path in (DBT_PROJECT / "models" / "core").glob("*.sql")}


def exposure_refs() -> dict[str, set[str]]:
    """exposure name -> the models its depends_on names."""
    exposures = yaml.safe_load(EXPOSURES.read_text(encoding="utf-8"))["exposures"]
    refs: dict[str, set[str]] = {}
    for exposure in exposures:
        names = set()
        for item in exposure["depends_on"]:
            match = _REF.match(item.strip())
            assert match, f"{exposure['name']}: depends_on {item!r} is not a ref('<model>')"
            names.add(match[1])
        refs[exposure["name"]] = names
    return refs


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of a module and of its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def marts_named_in_code(folder: Path, marts: set[str]) -> dict[str, set[str]]:
    """mart -> the files of `folder` whose code (its string literals: SQL, table names; not docstrings or comments)
    names it as a whole word."""
    words = re.compile(r"\b(" + "|".join(sorted(marts)) + r")\b")
    named: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                for mart in words.findall(node.value):
                    named.setdefault(mart, set()).add(path.name)
    return named


def test_the_scan_finds_marts_in_sql_and_names_not_in_docstrings(tmp_path: Path) -> None:
    (tmp_path / "reader.py").write_text(
        '"""Reads sales_funnel (a docstring)."""\n'
        "# revenue_monthly in a comment\n"
        'QUERY = "select * from {}.customer_value"\n'
        'TABLES = ("retention_monthly",)\n'
        'OTHER = "retention_monthly_extra, xcustomer_value"\n'
    )
    marts = {"sales_funnel", "revenue_monthly", "customer_value", "retention_monthly"}
    assert set(marts_named_in_code(tmp_path, marts)) == {"customer_value", "retention_monthly"}


def test_the_report_exposure_names_exactly_the_marts_the_report_reads() -> None:
    """A mart or core table the reporting package reads that the exposure `nightly_sales_report` does not name, or
    one it names that the package does not read, fails: the exposure is the report's list of dependencies."""
    marts = mart_names() | core_names()  # the month to date reads core tables too
    refs = exposure_refs()
    read = marts_named_in_code(REPORTING, marts)
    assert read, "the reporting package reads no mart?"
    exposure = refs["nightly_sales_report"]
    missing = sorted(set(read) - exposure)
    extra = sorted(exposure - set(read))
    assert not missing, f"the report reads marts its exposure does not name: {[(m, sorted(read[m])) for m in missing]}"
    assert not extra, f"the report's exposure names marts the reporting package does not read: {extra}"


def test_the_bi_exposure_names_every_mart() -> None:
    refs = exposure_refs()
    assert set(refs) == {"nightly_sales_report", "bi_dashboards"}
    assert refs["bi_dashboards"] == mart_names()
    assert refs["nightly_sales_report"] <= mart_names() | core_names()


def test_the_night_leaves_unit_tests_out() -> None:
    """Every dbt invocation of the pipeline (run_dbt, and the DAG's tasks through
    orchestration.task_guard.hold_night_for_dbt) runs with dbt's DBT_EXCLUDE_RESOURCE_TYPES=unit_test; only
    run_dbt(unit_tests=True) clears it (an empty value excludes nothing)."""
    dsn = "postgresql://u@127.0.0.1:5432/w"
    assert dbt_runner.dbt_environment(dsn)["DBT_EXCLUDE_RESOURCE_TYPES"] == "unit_test"
    assert dbt_runner.dbt_environment(dsn, unit_tests=True)["DBT_EXCLUDE_RESOURCE_TYPES"] == ""


def _contract_columns(models_yml: Path) -> dict[str, list[tuple[str, str]]]:
    models = yaml.safe_load(models_yml.read_text(encoding="utf-8"))["models"]
    return {m["name"]: [(c["name"], c.get("data_type")) for c in m.get("columns", [])] for m in models}


def test_every_core_and_mart_column_has_a_contract_type() -> None:
    """dbt_project.yml enforces the contracts of models/core and models/marts; each column needs its data_type,
    and each model of the folders its YAML entry (else dbt fails the model, naming nothing useful)."""
    project = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text(encoding="utf-8"))
    folders = project["models"]["b2b_pipeline"]
    for folder, models_yml in (("core", "_core__models.yml"), ("marts", "_marts__models.yml")):
        assert folders[folder]["+contract"] == {"enforced": True}, folder
        columns = _contract_columns(DBT_PROJECT / "models" / folder / models_yml)
        models = {p.stem for p in (DBT_PROJECT / "models" / folder).glob("*.sql")}
        assert set(columns) == models, folder
        untyped = [f"{m}.{c}" for m, cols in columns.items() for c, t in cols if not t]
        assert not untyped, untyped


def _break(project: Path, mart: str, change: dict[str, str | None]) -> None:
    """Make `mart` in the copy `project` select its contract's columns with `change` applied: column -> a new
    select expression (`<expr> as <name>`), or None to drop it."""
    columns = _contract_columns(project / "models" / "marts" / "_marts__models.yml")[mart]
    select = [change.get(name, name) for name, _ in columns]
    path = project / "models" / "marts" / f"{mart}.sql"
    text = path.read_text(encoding="utf-8").rstrip()
    last = "select * from final"
    assert text.endswith(last), mart
    path.write_text(f"{text[: -len(last)]}select {', '.join(filter(None, select))} from final\n", encoding="utf-8")


@pytest.mark.integration
@pytest.mark.slow
def test_a_breaking_change_of_a_mart_fails_the_build(reference_night: ReferenceNight, tmp_path: Path) -> None:
    """In a copy of the project: a mart with a renamed column, one with a removed column and one with a changed type
    each fail `dbt run` with dbt's contract error naming the column, before any table is written."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    # mart -> (its change, what dbt's contract error must say: the columns and why)
    broken = {
        "revenue_monthly": (
            {"paying_customers": "paying_customers as paying_accounts"},
            ["paying_customers", "missing in definition", "paying_accounts", "missing in contract"],
        ),
        "customer_value": ({"as_of_date": None}, ["as_of_date", "missing in definition"]),
        "sales_funnel": ({"stage_order": "stage_order::bigint as stage_order"}, ["stage_order", "data type mismatch"]),
    }
    for mart, (change, _) in broken.items():
        _break(project, mart, change)
    try:
        result = run_dbt(
            ["run", "--select", *broken],
            dsn=reference_night.dsn,
            # the published core, as the marts read it; the marts into a scratch schema, never `marts`
            vars={"as_of_date": AS_OF.isoformat(), "core_schema": "core", "marts_schema": SCRATCH_SCHEMA},
            project_dir=project,
            target_path=tmp_path / "target",
            log_path=tmp_path / "logs",
            raise_on_failure=False,
        )
        with psycopg.connect(reference_night.dsn) as conn:
            written = conn.execute("select count(*) from pg_tables where schemaname = %s", (SCRATCH_SCHEMA,)).fetchone()
    finally:
        with psycopg.connect(reference_night.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(SCRATCH_SCHEMA)))
    assert not result.success
    outcome: dict[str, Any] = {n.unique_id.rsplit(".", 1)[-1]: n for n in result.nodes}
    assert set(outcome) == set(broken)
    for mart, (_, words) in broken.items():
        node = outcome[mart]
        assert node.status == "error", (mart, node.status)
        assert "enforced contract that failed" in (node.message or ""), (mart, node.message)
        for word in words:
            assert word in node.message, (mart, word, node.message)
    assert written == (0,)


@pytest.mark.integration
@pytest.mark.slow
def test_dbt_unit_tests_pass(reference_night: ReferenceNight, tmp_path: Path) -> None:
    """`dbt test --select test_type:unit`, against the reference night's warehouse: with the night's environment
    nothing runs; with unit_tests=True every unit test of the project runs and passes."""
    common: dict[str, Any] = {
        "dsn": reference_night.dsn,
        "vars": {"as_of_date": AS_OF.isoformat(), "core_schema": "core", "marts_schema": "marts"},
        "target_path": tmp_path / "target",  # the second invocation parses partially, from the first's state
        "log_path": tmp_path / "logs",
    }
    as_the_night = run_dbt(["test", "--select", "test_type:unit"], **common)
    assert as_the_night.success and as_the_night.nodes == []

    result = run_dbt(["test", "--select", "test_type:unit"], unit_tests=True, **common)
    assert result.success, [f"{n.unique_id}: {n.message}" for n in result.failed_nodes]
    ran = {n.unique_id.rsplit(".", 1)[-1]: n.status for n in result.nodes}
    assert ran == dict.fromkeys(UNIT_TESTS, "pass")
