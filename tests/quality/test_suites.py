"""The expectation suites as data, and the reports: no database needed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from b2b_pipeline.quality.gx_runner import sqlalchemy_url
from b2b_pipeline.quality.report import gate_result_path, render_html, write_reports
from b2b_pipeline.quality.result import CheckResult, GateBlocked, GateResult
from b2b_pipeline.quality.suites import (
    LAYERS,
    SuiteError,
    build_kwargs,
    expectations_dir,
    load_suites,
    parse_suite,
    render_query,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_suites_load_and_cover_every_layer() -> None:
    assert expectations_dir() == REPO / "expectations"
    suites = load_suites()
    assert [s.layer for s in suites] == list(LAYERS)
    checks = {c.name: c for s in suites for c in s.checks}
    # the default tolerances of docs/sources.md, "Bad input"
    assert checks["raw.quarantine_share"].tolerance == 0.01 and checks["raw.quarantine_share"].blocks
    assert checks["raw.quarantine_any"].severity == "warn"
    assert checks["raw.files_refused"].blocks
    assert checks["core.deals_account_exists"].tolerance == 0.001
    assert checks["core.deals_stage_mapped"].blocks and checks["core.deals_stage_mapped"].tolerance is None
    assert checks["core.deals_amount_converted"].blocks
    assert checks["marts.sales_funnel_rows_vs_published"].tolerance == 0.5
    assert all(c.description and c.table and "." not in c.table for c in checks.values())


def test_tolerance_becomes_mostly_and_fills_queries() -> None:
    checks = {c.name: c for s in load_suites() for c in s.checks}
    assert build_kwargs(checks["core.deals_account_exists"]) == {"column": "account_key", "mostly": 0.999}
    values = {"since_batch_id": "4", "through_batch_id": "6", "schema": "raw_files"}
    query = render_query(checks["raw.quarantine_share"], values)
    assert "> 0.01 *" in query and "batch_id > 4 and batch_id <= 6" in query
    assert "raw_files.quarantine" in query and "{batch}" in query
    assert "{" not in query.replace("{batch}", "")


def test_columns_expand_into_one_check_per_column() -> None:
    suite = parse_suite(
        {
            "checks": [
                {
                    "name": "core.x_present",
                    "table": "t",
                    "description": "d",
                    "expectation": "ExpectColumnValuesToNotBeNull",
                    "columns": ["a", "b"],
                    "severity": "block",
                }
            ]
        },
        "core",
    )
    assert [(c.name, dict(c.kwargs)) for c in suite.checks] == [
        ("core.x_present.a", {"column": "a"}),
        ("core.x_present.b", {"column": "b"}),
    ]


BASE = {"name": "core.c", "table": "t", "description": "d", "severity": "block"}


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"expectation": "ExpectNothing"}, "not an expectation"),
        ({"expectation": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a"}, "color": 1}, "unknown key"),
        ({"expectation": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a", "mostly": 0.9}}, "tolerance"),
        ({"expectation": "ExpectTableRowCountToBeBetween", "kwargs": {"min_value": 1}, "tolerance": 0.1}, "mostly"),
        ({"expectation": "UnexpectedRowsExpectation", "query": "select 1"}, "{batch}"),
        ({"expectation": "UnexpectedRowsExpectation", "query": "select * from {batch}", "tolerance": 0.1}, "{tol"),
        (
            {"expectation": "UnexpectedRowsExpectation", "query": "select * from {batch} where x > {tolerance}"},
            "no tol",
        ),
        ({"expectation": "UnexpectedRowsExpectation", "query": "select * from {batch} where {nope}"}, "placeholder"),
        ({"expectation": "UnexpectedRowsExpectation", "query": "select * from {batch} as b"}, "CTE"),
        ({"expectation": "UnexpectedRowsExpectation", "query": "select * from {batch} join x on true"}, "JOIN"),
        ({"expectation": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a"}, "severity": "fatal"}, "severity"),
        ({"expectation": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a"}, "tolerance": 2}, "[0, 1)"),
        ({"expectation": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a"}, "table": "core.t"}, "schema"),
    ],
)
def test_a_malformed_check_is_refused_with_its_reason(check: dict, message: str) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite({"checks": [{**BASE, **check}]}, "core")
    assert message in str(caught.value)


def test_a_check_name_is_unique_across_layers(tmp_path: Path) -> None:
    for layer in LAYERS:
        document = {
            "layer": layer,
            "checks": [{**BASE, "expectation": "ExpectColumnValuesToNotBeNull", "kwargs": {"column": "a"}}],
        }
        (tmp_path / f"{layer}.yml").write_text(yaml.safe_dump(document))
    with pytest.raises(SuiteError, match="also defined"):
        load_suites(tmp_path)


def test_sqlalchemy_url_keeps_unix_sockets() -> None:
    assert sqlalchemy_url("postgresql://postgres:@/warehouse?host=/tmp/x") == (
        "postgresql+psycopg://postgres:@/warehouse?host=/tmp/x"
    )
    assert sqlalchemy_url("postgres://u:p@h:5433/db") == "postgresql+psycopg://u:p@h:5433/db"
    with pytest.raises(ValueError):
        sqlalchemy_url("mysql://h/db")


def _result(passed: bool) -> GateResult:
    blocked = CheckResult(
        name="core.deals_account_exists",
        layer="core",
        table="core__candidate.fct_deals",
        severity="block",
        success=False,
        status="blocked",
        expectation="ExpectColumnValuesToNotBeNull",
        description="A deal's <account> exists.",
        observed=3,
        element_count=10,
        unexpected_fraction=0.3,
        tolerance=0.001,
        examples=[{"deal_id": "D<1>", "crm_account_id": "A9"}],
        summary="3 of 10 row(s) unexpected (30%); tolerance 0.1%",
    )
    ok = CheckResult(
        name="raw.files_refused",
        layer="raw",
        table="raw_files.file_refusals",
        severity="block",
        success=True,
        status="passed",
        expectation="UnexpectedRowsExpectation",
        description="No refused file.",
        observed=0,
        summary="no unexpected rows",
    )
    return GateResult(
        as_of=date(2026, 3, 31),
        passed=passed,
        checks=[ok, blocked] if not passed else [ok],
        started_at=datetime(2026, 4, 1, 2, 30, tzinfo=UTC),
        duration_seconds=4.2,
        schemas={"raw": "raw_files", "core": "core__candidate"},
        since_batch_id=3,
        through_batch_id=5,
    )


def test_reports_land_where_the_orchestration_reads_them(tmp_path: Path) -> None:
    result = _result(passed=False)
    paths = write_reports(result, tmp_path)
    assert paths.json == gate_result_path(tmp_path, date(2026, 3, 31))
    assert paths.json == tmp_path / "reports" / "2026-03-31" / "gate.json"
    document = json.loads(paths.json.read_text())
    assert document["passed"] is False
    assert document["blocking"] == ["core.deals_account_exists"]
    assert document["checks"][1]["examples"] == [{"deal_id": "D<1>", "crm_account_id": "A9"}]
    page = paths.html.read_text()
    assert paths.html.name == "quality.html" and "BLOCKED" in page
    assert "D&lt;1&gt;" in page and "D<1>" not in page  # escaped
    assert "0.1%" in page and "batches 4 to 5" in page


def test_blocked_message_names_each_blocking_check_with_counts_and_examples() -> None:
    message = str(GateBlocked(_result(passed=False), Path("/r/quality.html")))
    assert "core.deals_account_exists" in message
    assert "3 of 10 row(s)" in message and "deal_id=D<1>" in message
    assert "raw.files_refused" not in message and "/r/quality.html" in message


def test_html_of_a_passed_night() -> None:
    page = render_html(_result(passed=True))
    assert "PASSED" in page and "Why the night is blocked" not in page


def _tests_checked_by_gate(models_yml: Path) -> list[tuple[str, str, str]]:
    """(model, column, test) of each column test tagged `checked_by_gate` in a dbt models YAML."""
    found = []
    for model in yaml.safe_load(models_yml.read_text())["models"]:
        for column in model.get("columns", []):
            for test in column.get("data_tests", []):
                if isinstance(test, dict):
                    ((name, spec),) = test.items()
                    if "checked_by_gate" in ((spec or {}).get("config") or {}).get("tags", []):
                        found.append((model["name"], column["name"], name))
    return found


def _gate_twin(checks: list, table: str, column: str, test: str) -> object | None:
    """The blocking gate check that runs dbt's `test` of `table.column` as it is, if there is one."""
    for check in checks:
        if check.table != table or not check.blocks or check.tolerance or check.only_if_exists:
            continue
        is_not_null = check.expectation == "ExpectColumnValuesToNotBeNull" and dict(check.kwargs) == {"column": column}
        if test == "not_null" and is_not_null:
            return check
        if test == "unique" and check.is_query:
            duplicates = (
                f"select {column}, count(*) as rows_with_key from {{batch}} where {column} is not null "
                f"group by {column} having count(*) > 1 order by {column}"
            )
            if " ".join(check.query.split()) == duplicates:
                return check
    return None


def test_every_dbt_test_left_to_the_gate_has_its_twin_in_the_gate() -> None:
    """The nightly DAG skips the dbt tests tagged `checked_by_gate`: each must be a key check the
    gate runs on the same table and column, unconditionally blocking, or the night would check less."""
    core = next(s for s in load_suites() if s.layer == "core")
    tagged = _tests_checked_by_gate(REPO / "dbt_project" / "models" / "core" / "_core__models.yml")
    assert len(tagged) >= 20  # the unique and not_null tests of every single-column key of the star
    for table, column, test in tagged:
        assert _gate_twin(list(core.checks), table, column, test), f"{test} of {table}.{column} has no gate twin"
    # and no other folder tags a test the gate does not see
    others = [
        p
        for p in (REPO / "dbt_project" / "models").rglob("*.yml")
        if p.name != "_core__models.yml" and "checked_by_gate" in p.read_text()
    ]
    assert others == []


def test_the_twin_finder_refuses_a_check_that_differs() -> None:
    """`_gate_twin` is what the test above relies on: a warning, a tolerance, another column or a
    check that may be skipped is no twin."""
    base = {
        "table": "fct_deals",
        "description": "d",
        "expectation": "ExpectColumnValuesToNotBeNull",
        "kwargs": {"column": "deal_key"},
        "severity": "block",
    }
    suite = parse_suite({"layer": "core", "description": "t", "checks": [{"name": "core.a", **base}]}, "core")
    assert _gate_twin(list(suite.checks), "fct_deals", "deal_key", "not_null")
    for change in (
        {"severity": "warn"},
        {"tolerance": 0.01},
        {"kwargs": {"column": "deal_id"}},
        {"only_if_exists": "{schema}.fct_deals"},
    ):
        changed = {"name": "core.a", **base, **change}
        other = parse_suite({"layer": "core", "description": "t", "checks": [changed]}, "core")
        assert _gate_twin(list(other.checks), "fct_deals", "deal_key", "not_null") is None, change
    assert _gate_twin(list(suite.checks), "fct_deals", "deal_key", "unique") is None
