"""fault suite, command line

Commands that used to do the wrong thing quietly, driven through the real `b2b` Typer app
(in-process, no mocks; a fresh database per test where a warehouse is needed). Each case's
docstring states the expected outcome. `b2b` prints its own messages to the process's real
stdout/stderr (`sys.__stdout__`), so the output checked is the runner's plus `capfd`'s.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from b2b_pipeline import cli
from b2b_pipeline.cli import app
from b2b_pipeline.quality.result import GateResult
from b2b_pipeline.quality.state import accept_raw_batches, record_gate_run
from reporting.published_marts import create_marts, fill_marts  # tests/ is on sys.path (rootdir-relative)

# a tiny company: 20 accounts over eight weeks, two nightly change folders
TINY = ["--seed", "7", "--accounts", "20", "--start", "2026-10-01", "--end", "2026-11-25", "--nightly-days", "2"]
PUBLISHED = date(2026, 11, 25)
NO_WAREHOUSE = "postgresql://b2b@127.0.0.1:1/none"  # refuses connections at once: a command that gets that far fails


def b2b(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `b2b <args>`; its exit code and everything it printed (usage errors and Rich output)."""
    capfd.readouterr()
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    captured = capfd.readouterr()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output + captured.out + captured.err


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) with the SHA-256 of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def load_batches(dsn: str) -> int:
    """Rows of raw_files.load_batches (0 when no load ever ran)."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("select to_regclass('raw_files.load_batches')").fetchone()[0] is None:  # type: ignore[index]
            return 0
        return conn.execute("select count(*) from raw_files.load_batches").fetchone()[0]  # type: ignore[index]


@pytest.fixture(scope="module")
def tiny_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated drop (read-only for the tests: copy it to change it)."""
    out = tmp_path_factory.mktemp("tiny") / "drop"
    code = CliRunner().invoke(app, ["generate", "--out", str(out), *TINY]).exit_code
    assert code == 0
    return out


# ------------------------------------------------------------------------------------ b2b generate


@pytest.mark.parametrize("existing", ["foreign_file", "generated_drop", "demo_marker"])
def test_generate_refuses_a_folder_holding_a_drop(
    existing: str, tiny_drop: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b generate --out DIR` when DIR holds a drop (a foreign crm/ file, a generated drop, or only the
    demo's `.complete` marker): exit 1, the message names DIR and --force, every byte of DIR unchanged."""
    out = tmp_path / "drop"
    if existing == "foreign_file":
        (out / "crm").mkdir(parents=True)
        (out / "crm" / "deals.csv").write_text("deal_id\n1\n", encoding="utf-8")
    elif existing == "generated_drop":
        assert b2b(capfd, "generate", "--out", str(out), "--seed", "1", *TINY[2:])[0] == 0
    else:
        out.mkdir()
        (out / ".complete").write_text("generated\n", encoding="utf-8")
    before = snapshot(out)

    code, output = b2b(capfd, "generate", "--out", str(out), *TINY)

    assert code == 1, output
    assert str(out) in output and "already holds a file drop" in output and "--force" in output
    assert snapshot(out) == before


def test_generate_force_replaces_a_drop(tiny_drop: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`b2b generate --force` into a folder holding another drop (generated with another seed, plus a stray
    file and the demo marker): exit 0, the folder then holds exactly the new drop, byte for byte, and what
    lies beside crm/ and billing/ stays."""
    out = tmp_path / "drop"
    assert b2b(capfd, "generate", "--out", str(out), *TINY[2:], "--seed", "1")[0] == 0
    (out / "crm" / "notes.txt").write_text("a stray file of the old drop\n", encoding="utf-8")
    (out / ".complete").write_text("generated\n", encoding="utf-8")
    (out / "README").write_text("mine\n", encoding="utf-8")

    code, output = b2b(capfd, "generate", "--out", str(out), *TINY, "--force")

    assert code == 0, output
    assert "Replacing the file drop" in output
    after = snapshot(out)
    assert after.pop("README") == hashlib.sha256(b"mine\n").hexdigest()
    assert after == snapshot(tiny_drop)  # no stray file, no demo marker: only the new drop


@pytest.mark.parametrize("state", ["missing", "empty", "empty_system_folders"])
def test_generate_into_an_empty_folder_needs_no_force(
    state: str, tiny_drop: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b generate --out DIR` with DIR missing, empty, or holding only empty crm/ and billing/ folders:
    exit 0 without --force, and the drop is the same bytes as any other generation with these arguments."""
    out = tmp_path / "drop"
    if state != "missing":
        out.mkdir()
    if state == "empty_system_folders":
        (out / "crm").mkdir()
        (out / "billing").mkdir()

    code, output = b2b(capfd, "generate", "--out", str(out), *TINY)

    assert code == 0, output
    assert snapshot(out) == snapshot(tiny_drop)


def test_generate_with_bad_arguments_and_force_deletes_nothing(
    tiny_drop: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b generate --force` with arguments the generator refuses (--nightly-days 61): exit 1 and the drop
    already there stays byte for byte (the arguments are checked before anything is removed)."""
    out = tmp_path / "drop"
    assert b2b(capfd, "generate", "--out", str(out), *TINY)[0] == 0
    (out / ".complete").write_text("generated\n", encoding="utf-8")
    before = snapshot(out)

    code, output = b2b(capfd, "generate", "--out", str(out), *TINY[:-2], "--nightly-days", "61", "--force")

    assert code == 1, output
    assert "nightly_days must be between 0 and 60" in output
    assert snapshot(out) == before


def test_demo_generation_replaces_a_half_written_drop(
    tiny_drop: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The demo's path (`_generate`, called by `b2b demo` when its drop lacks `.complete`) on a drop a killed
    generation left half-written (files, no generator marker): it is replaced by the complete drop."""
    drop = tmp_path / "demo" / "drop"
    (drop / "crm" / "2026-11-25").mkdir(parents=True)
    (drop / "crm" / "accounts.csv").write_bytes((tiny_drop / "crm" / "accounts.csv").read_bytes()[:100])
    (drop / "crm" / "2026-11-25" / "deals.csv").write_text("deal_id\n", encoding="utf-8")

    summary = cli._generate(drop, 7, 20, date(2026, 10, 1), PUBLISHED, 2, False, 0.0)

    assert summary.files
    assert snapshot(drop) == snapshot(tiny_drop)


# ---------------------------------------------------------------------------- enumerated options


@pytest.mark.integration
def test_load_rejects_an_unknown_system(warehouse: str, tiny_drop: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`b2b load --system hr`: a usage error, exit 2, naming crm and billing; no load batch is recorded."""
    code, output = b2b(capfd, "load", "--source-dir", str(tiny_drop), "--system", "crm", "--system", "hr")

    assert code == 2, output
    assert "--system" in output and "'hr'" in output and "'crm'" in output and "'billing'" in output
    assert load_batches(warehouse) == 0


@pytest.mark.integration
def test_load_one_known_system(warehouse: str, tiny_drop: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`b2b load --system CRM` (any case): exit 0, one batch holding the CRM files only."""
    code, output = b2b(capfd, "load", "--source-dir", str(tiny_drop), "--system", "CRM")

    assert code == 0, output
    with psycopg.connect(warehouse) as conn:
        files = [row[0] for row in conn.execute("select file from raw_files.file_loads").fetchall()]
    assert load_batches(warehouse) == 1
    assert files and all(f.startswith("crm/") for f in files)


def test_bench_rejects_an_unknown_size(
    b2b_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b bench --sizes S,XL`: a usage error, exit 2, naming the sizes S, M, L; nothing measured or written."""
    from b2b_pipeline.bench import harness

    measured: list[list[str]] = []
    monkeypatch.setattr(harness, "run_bench", lambda sizes, *args: measured.append(sizes))
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", NO_WAREHOUSE)
    out = tmp_path / "results"
    code, output = b2b(capfd, "bench", "--sizes", "S,XL", "--out", str(out), "--cache", str(tmp_path / "cache"))

    assert code == 2, output
    assert "--sizes" in output and "S, M, L" in output
    assert not out.exists() and not (tmp_path / "cache").exists() and measured == []


def test_gate_run_rejects_an_unknown_layer(
    b2b_home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b gate run --layers raw,mart`: exit 1 (2 means blocked for `gate run`), naming the layers;
    the gate does not run and writes no report."""
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", NO_WAREHOUSE)
    code, output = b2b(capfd, "gate", "run", "--date", "2026-11-25", "--layers", "raw,mart")

    assert code == 1, output
    assert "--layers takes" in output and "raw, staging, core, marts" in output and "'raw,mart'" in output
    assert not b2b_home.exists()


# ------------------------------------------------------------------------------------ b2b report


@pytest.fixture
def nights(warehouse: str, b2b_home: Path) -> str:
    """A warehouse whose marts are published as of 2026-11-25, with nightly gate runs recorded for
    2026-11-24 (blocked) and 2026-11-25 (passed), and an operator's acceptance dated 2026-11-26."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_marts(conn)
        fill_marts(conn, PUBLISHED)
    for day, passed in ((date(2026, 11, 24), False), (PUBLISHED, True)):
        result = GateResult(day, passed, [], datetime.now(UTC), 1.0, {}, 0, 0)
        record_gate_run(warehouse, result)
    accept_raw_batches(warehouse, date(2026, 11, 26), "test: an acceptance is no night")
    return warehouse


@pytest.mark.integration
@pytest.mark.parametrize("day", ["2026-11-20", "2026-11-26"])
def test_report_refuses_a_night_that_never_ran(
    day: str, nights: str, b2b_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b report --date D` for a night that never ran (before the published one, or a day that only has
    an acceptance): exit 1, listing the nights that ran newest first; no report is written."""
    code, output = b2b(capfd, "report", "--date", day)

    assert code == 1, output
    assert f"no night of {day} ran" in output
    assert "Nights that ran, newest first (2 in all): 2026-11-25, 2026-11-24" in output
    assert not (b2b_home / "reports").exists()


@pytest.mark.integration
@pytest.mark.parametrize("day", ["2026-11-25", "2026-11-24"])
def test_report_of_a_night_that_ran(day: str, nights: str, b2b_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`b2b report --date D` for a night that ran (the published one, or a blocked one in gate_runs): exit 0,
    the report of D is written."""
    code, output = b2b(capfd, "report", "--date", day)

    assert code == 0, output
    assert (b2b_home / "reports" / day / "index.html").is_file()


@pytest.mark.integration
def test_report_lists_the_ten_newest_nights(warehouse: str, b2b_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`b2b report --date D` in a warehouse of 12 nights, none of D: exit 1, the 10 newest named and
    the 2 older counted."""
    for n in range(12):
        record_gate_run(warehouse, GateResult(date(2026, 11, 1 + n), True, [], datetime.now(UTC), 1.0, {}, 0, 0))

    code, output = b2b(capfd, "report", "--date", "2026-10-01")

    assert code == 1, output
    assert "(12 in all): 2026-11-12, 2026-11-11," in output and "2026-11-03, and 2 older" in output
    assert "2026-11-02" not in output


# ------------------------------------------------------------------------------- b2b gate accept


@pytest.mark.integration
@pytest.mark.parametrize("note", [[], ["--note", ""], ["--note", "   "]], ids=["missing", "empty", "blank"])
def test_gate_accept_without_a_note_is_a_usage_error(
    note: list[str], warehouse: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """`b2b gate accept` without --note, or with an empty or blank one: exit 2 (a usage error naming
    --note), and no acceptance is recorded."""
    code, output = b2b(capfd, "gate", "accept", "--date", "2026-11-25", *note)

    assert code == 2, output
    assert "--note" in output
    if not note:
        assert "Missing option '--note'" in output
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select to_regclass('raw_files.gate_runs')").fetchone()[0] is None  # type: ignore[index]


@pytest.mark.integration
def test_gate_accept_with_a_bad_date_is_a_usage_error(warehouse: str, capfd: pytest.CaptureFixture[str]) -> None:
    """`b2b gate accept --note why --date 2026-13-01`: exit 2 (a usage error naming --date), nothing recorded."""
    code, output = b2b(capfd, "gate", "accept", "--note", "why", "--date", "2026-13-01")

    assert code == 2, output
    assert "--date" in output and "is not a date" in output
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select to_regclass('raw_files.gate_runs')").fetchone()[0] is None  # type: ignore[index]


def test_run_with_a_bad_setting_stops_before_anything_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt time zone in b2b.yml: `b2b run` exits 1 naming the file, the key and the value,
    before it touches the warehouse (here: one that refuses connections) or B2B_HOME's lock."""
    monkeypatch.setenv("B2B_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", NO_WAREHOUSE)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "b2b.yml").write_text("reporting_timezone: Europe/Moskow\n", encoding="utf-8")
    (tmp_path / "drop").mkdir()
    code, output = b2b(capfd, "run", "--date", "2026-11-25", "--source-dir", str(tmp_path / "drop"))
    assert code == 1
    assert f"{tmp_path / 'home' / 'b2b.yml'}: reporting_timezone='Europe/Moskow': not an IANA time zone" in output
    assert "refused" not in output.lower() and not (tmp_path / "home" / "airflow").exists()
