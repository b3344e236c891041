"""`b2b gate run | accept | history` on a real warehouse, through the Typer app (no mocks).

The databases are those of test_gate.py: a template with the clean drop (`drops/clean`, as of
2026-03-31) loaded and built into the candidate schemas, copied for every test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.table import Table
from typer.testing import CliRunner, Result

from b2b_pipeline.cli import app
from b2b_pipeline.filedrop.loader import load_drop
from b2b_pipeline.publish import publish
from b2b_pipeline.quality.commands import MANUAL_HOME, print_table
from b2b_pipeline.quality.report import gate_result_path
from b2b_pipeline.warehouse import connect

from .test_gate import AS_OF, activities, execute, night_db, template_db, write_drop  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

DATE = AS_OF.isoformat()


def b2b(*args: str) -> Result:
    """Run `b2b <args>` in-process, wide enough that Rich does not fold check names."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def gate_runs(dsn: str) -> list[tuple[object, ...]]:
    """The rows of raw_files.gate_runs (none when the table does not exist)."""
    with connect(dsn) as conn:
        if conn.execute("select to_regclass('raw_files.gate_runs')").fetchone()[0] is None:  # type: ignore[index]
            return []
        return conn.execute(
            "select passed, accepted, since_batch_id, through_batch_id, note from raw_files.gate_runs order by run_id"
        ).fetchall()


@pytest.fixture
def night(night_db: str, b2b_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """A copy of the built clean night that `b2b` finds through B2B_WAREHOUSE_DSN."""
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", night_db)
    return night_db


def test_accept_refuses_an_empty_note(warehouse: str) -> None:
    for note in ([], ["--note", ""], ["--note", "   "]):
        result = b2b("gate", "accept", "--date", DATE, *note)
        assert result.exit_code == 2, result.output  # a usage error
        assert "--note" in result.output
    assert gate_runs(warehouse) == []


def test_a_clean_night_passes_and_is_not_recorded(night: str, b2b_home: Path) -> None:
    result = b2b("gate", "run", "--date", DATE)
    assert result.exit_code == 0, result.output
    assert "Passed" in result.output and "0 blocked" in result.output
    assert "passed check(s) not listed" in result.output
    # the reports of a manual run go beside the night's, which stay the nightly step's
    verdict = json.loads(gate_result_path(b2b_home / MANUAL_HOME, AS_OF).read_text())
    assert verdict["passed"] is True and {c["layer"] for c in verdict["checks"]} == {"raw", "staging", "core", "marts"}
    assert verdict["schemas"]["marts"] == "marts__candidate"
    assert (b2b_home / MANUAL_HOME / "reports" / DATE / "quality.html").is_file()
    assert not gate_result_path(b2b_home, AS_OF).exists()
    # nothing recorded: the next night still sees batch 1
    assert gate_runs(night) == []
    history = b2b("gate", "history")
    assert history.exit_code == 0 and "No gate run recorded yet" in history.output


def test_bad_core_rows_exit_2_naming_the_check(night: str) -> None:
    execute(night, "update core__candidate.fct_invoices set amount_paid = -5 where invoice_id = 'I1'")
    result = b2b("gate", "run", "--date", DATE, "--layers", "core", "--all")
    assert result.exit_code == 2, result.output
    assert "Blocked" in result.output
    assert "core.invoices_amount_not_negative.amount_paid on core__candidate.fct_invoices" in result.output
    assert "core.deals_status_known" in result.output  # --all lists the passed checks too
    assert gate_runs(night) == []


def test_accepted_batches_leave_the_next_raw_run(night: str, tmp_path: Path) -> None:
    drop = write_drop(tmp_path, {"crm/2026-03-31/activities.csv": activities(good=18, bad=2)})
    assert load_drop(night, drop).rows_quarantined == 2  # batch 2; batch 1 is the clean drop

    blocked = b2b("gate", "run", "--date", DATE, "--layers", "raw")
    assert blocked.exit_code == 2, blocked.output
    assert "raw.quarantine_share on raw_files" in blocked.output
    assert "load batches 1..2" in blocked.output
    assert gate_runs(night) == []  # a manual run does not move the window

    accepted = b2b("gate", "accept", "--date", DATE, "--note", "test: the fax activities are known junk")
    assert accepted.exit_code == 0, accepted.output
    assert "Accepted load batches 1..2" in accepted.output
    assert gate_runs(night) == [(True, True, 0, 2, "test: the fax activities are known junk")]

    again = b2b("gate", "run", "--date", DATE, "--layers", "raw")
    assert again.exit_code == 0, again.output
    assert "load batches none new" in again.output
    assert "raw.new_files_loaded" in again.output  # warns: no batch after the accepted ones
    assert "raw.quarantine_share" not in again.output  # passed: the quarantined rows are out of scope

    nothing_new = b2b("gate", "accept", "--date", DATE, "--note", "again")
    assert nothing_new.exit_code == 0 and "No new load batch to accept" in nothing_new.output

    history = b2b("gate", "history", "--limit", "5")
    assert history.exit_code == 0, history.output
    assert "accepted" in history.output and "test: the fax activities are known junk" in history.output
    assert history.output.index("again") < history.output.index("known junk")  # newest first


def test_published_schemas_after_the_night_published(night: str) -> None:
    publish(night)  # the candidates become core and marts
    candidates = b2b("gate", "run", "--date", DATE, "--layers", "marts")
    assert candidates.exit_code == 2, candidates.output
    assert "b2b gate run --published" in candidates.output

    published = b2b("gate", "run", "--date", DATE, "--layers", "core,marts", "--published")
    assert published.exit_code == 0, published.output
    assert "core: core, marts: marts" in published.output


def test_bad_options_are_errors_not_verdicts(warehouse: str) -> None:
    bad_date = b2b("gate", "run", "--date", "2026-02-30")
    assert bad_date.exit_code == 1 and "is not a date" in bad_date.output
    bad_layer = b2b("gate", "run", "--date", DATE, "--layers", "raw,mart")
    assert bad_layer.exit_code == 1 and "--layers takes" in bad_layer.output


def test_a_piped_table_keeps_each_name_on_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Piped or captured (not a terminal), a table is as wide as its longest row, up to 200 columns, whatever
    the console's width: a log can be searched for a check's name or an operator's note."""
    monkeypatch.setenv("COLUMNS", "80")
    table = Table()
    table.add_column("check")
    table.add_column("note")
    table.add_row("raw.source_freshness.files.deal_stage_history", "test: the fax activities are known junk " * 2)
    print_table(table)
    out = capsys.readouterr().out
    assert "raw.source_freshness.files.deal_stage_history" in out
    assert "test: the fax activities are known junk " * 2 in out
