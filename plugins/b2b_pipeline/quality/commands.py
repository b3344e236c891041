"""`b2b gate`: the quality gate for operators (run it by hand, accept load batches, list past runs).

- `b2b gate run --date D`: validate the night's layers like the nightly `quality_gate` task,
  print the checks, write the reports under `B2B_HOME/manual-gate/reports/D/`. A manual run is
  *not* recorded in `raw_files.gate_runs`: it never moves the batch window the next night sees,
  and the night's own `gate.json` / `quality.html` (read by `b2b report`) stay the nightly ones.
- `b2b gate accept --note "why"`: accept every load batch so far as checked (recorded, with the note).
- `b2b gate history`: the recorded gate runs (nightly runs and acceptances), newest first.

Exit codes of `gate run` as for `b2b run`: 0 passed, 2 blocked by the gate, 1 on any other error
(a bad --date or --layers too, so that 2 always means blocked). `gate accept` and `gate history`
exit 0 done, 2 on a usage error (a missing or blank --note, a bad --date), 1 on any other error.
See docs/quality-gate.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from b2b_pipeline.cli_support import parse_date, resolve_warehouse, warehouse_night_lock
from b2b_pipeline.config import b2b_home, reporting_timezone
from b2b_pipeline.night import Night
from b2b_pipeline.quality.gate import PUBLISHED_SCHEMAS, RAW_SCHEMA, run_gate
from b2b_pipeline.quality.report import write_reports
from b2b_pipeline.quality.result import CheckResult, GateResult
from b2b_pipeline.quality.state import accept_raw_batches
from b2b_pipeline.quality.suites import LAYERS
from b2b_pipeline.warehouse import connect, redact

EXIT_PASSED = 0
EXIT_ERROR = 1
EXIT_BLOCKED = 2
MAX_LISTED = 20  # blocking checks spelled out after the table
MANUAL_HOME = "manual-gate"  # under B2B_HOME: where `b2b gate run` writes its reports

STATUS_STYLE = {"passed": "green", "warned": "yellow", "blocked": "red", "skipped": "dim"}

gate_app = typer.Typer(
    help="The quality gate by hand: run it, accept load batches, list past runs.",
    no_args_is_help=True,
)
# resolved at print time, so that a test runner's captured streams see the output
console = Console()
err = Console(stderr=True)
LOG_WIDTH = 200


@gate_app.command("run")
def run_command(
    date_: Annotated[str, typer.Option("--date", help="The night's as-of date D, YYYY-MM-DD.")],
    layers: Annotated[
        str, typer.Option(help="Comma-separated layers to validate: raw, staging, core, marts.")
    ] = ",".join(LAYERS),
    published: Annotated[
        bool,
        typer.Option(
            "--published",
            help="Validate the published core and marts instead of the candidates "
            "(the candidates are gone once a night published).",
        ),
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every check, not only those that warned, blocked or were skipped.")
    ] = False,
) -> None:
    """Run the quality gate against the warehouse now and print its checks; record nothing.

    The reports go to B2B_HOME/manual-gate/reports/<D>/ (gate.json, quality.html, data_docs/).
    Exits 0 when the gate passes, 2 when it blocks, 1 on any other error.
    """
    as_of = _parse_date(date_)
    chosen = _parse_layers(layers)
    schemas = {layer: PUBLISHED_SCHEMAS[layer] for layer in ("core", "marts")} if published else None
    dsn = _warehouse()
    home = b2b_home() / MANUAL_HOME
    night = Night(as_of=as_of, source_dir=Path())  # the gate reads only the as-of date
    try:
        with warehouse_night_lock(dsn, "b2b-gate-run", as_of.isoformat(), err):
            result = run_gate(dsn, night, home, schemas=schemas, layers=chosen, source_freshness=True)
        paths = write_reports(result, home)
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the warehouse {redact(dsn)}: {exc}")
    except Exception as exc:  # unreadable suites, an SQL error outside the checks, an unwritable B2B_HOME
        _fail(f"the quality gate could not run: {exc}")

    print_checks(result, show_all=show_all)
    counts = result.counts()
    console.print(
        f"{counts['checks']} checks: {counts['passed']} passed, {counts['warned']} warned, "
        f"{counts['blocked']} blocked, {counts['skipped']} skipped in {result.duration_seconds:.1f} s; "
        f"load batches {_batch_range(result.since_batch_id, result.through_batch_id)}.",
        soft_wrap=True,
    )
    console.print(f"Report: {paths.html}", soft_wrap=True)
    if result.data_docs:
        console.print(f"GX Data Docs: {result.data_docs}", soft_wrap=True)
    console.print("Not recorded in raw_files.gate_runs: the next night sees the same load batches.")
    if result.passed:
        console.print(f"[green]Passed[/green]: no blocking check failed for the night of {as_of}.")
        raise typer.Exit(EXIT_PASSED)
    err.print(f"[red]Blocked[/red] by the quality gate ({len(result.blocking)} blocking check(s)):")
    for check in result.blocking[:MAX_LISTED]:
        err.print(f"  - {escape(check.name)} on {escape(check.table)}: {escape(check.summary)}", soft_wrap=True)
    if len(result.blocking) > MAX_LISTED:
        err.print(f"  ... and {len(result.blocking) - MAX_LISTED} more: see the table above and the report.")
    if not published and _candidates_missing(result):
        err.print(
            "The candidate schemas are missing tables: tonight's dbt build did not run (or failed), or the "
            "night already published (publishing renames them to core and marts). "
            "To check the published night: b2b gate run --published",
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_BLOCKED)


def _required_note(value: str) -> str:
    """`--note` of `b2b gate accept`: a blank note is a usage error (exit 2) like a missing one."""
    if not value.strip():
        raise typer.BadParameter('say why the batches are accepted: --note "..." (it is kept in raw_files.gate_runs)')
    return value.strip()


@gate_app.command("accept")
def accept_command(
    note: Annotated[
        str,
        typer.Option(callback=_required_note, help="Why the batches are accepted (required; kept with the run)."),
    ],
    date_: Annotated[
        str | None,
        typer.Option(
            "--date", help="The as-of date recorded with the acceptance (default: today, reporting time zone)."
        ),
    ] = None,
) -> None:
    """Accept every load batch so far as checked: the raw checks of the next gate run only see later batches.

    The way out when a blocked night's quarantined rows or refused files were looked at and are
    to be lived with. Recorded in raw_files.gate_runs with the note.
    """
    # a bad date: usage error
    as_of = parse_date(date_, "--date") if date_ else datetime.now(ZoneInfo(reporting_timezone())).date()
    dsn = _warehouse()
    try:
        with warehouse_night_lock(dsn, "b2b-gate-accept", as_of.isoformat(), err):
            since, through = accept_raw_batches(dsn, as_of, note)
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the warehouse {redact(dsn)}: {exc}")
    except (psycopg.Error, ValueError) as exc:
        _fail(f"cannot accept the load batches: {exc}")
    if through > since:
        console.print(
            f"Accepted load batches {_batch_range(since, through)} as checked (as of {as_of}): {escape(note)}"
        )
        console.print(f"The raw checks of the next gate run only see batches after {through}.")
    else:
        console.print(
            f"No new load batch to accept: every batch through {through} was already covered by a passed "
            "or accepted gate run. The acceptance and its note are recorded anyway."
        )


@gate_app.command("history")
def history_command(
    limit: Annotated[int, typer.Option(min=1, help="How many runs to list, newest first.")] = 20,
) -> None:
    """List the recorded gate runs (nightly runs and acceptances), newest first."""
    dsn = _warehouse()
    try:
        rows = read_history(dsn, limit)
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the warehouse {redact(dsn)}: {exc}")
    except psycopg.Error as exc:
        _fail(f"cannot read {RAW_SCHEMA}.gate_runs: {exc}")
    if rows is None or not rows:
        console.print(f"No gate run recorded yet ({RAW_SCHEMA}.gate_runs is empty or does not exist).")
        return
    table = Table(title=f"Gate runs ({RAW_SCHEMA}.gate_runs), newest first")
    for name in ("run", "as-of", "finished (UTC)", "verdict", "load batches", "blocking", "warnings", "report / note"):
        table.add_column(name, justify="right" if name in ("run", "blocking", "warnings") else "left")
    for row in rows:
        if row["accepted"]:
            verdict = "[cyan]accepted[/cyan]"
        elif row["passed"]:
            verdict = "[green]passed[/green]"
        else:
            verdict = "[red]blocked[/red]"
        detail = row["note"] if row["accepted"] else row["report"]
        table.add_row(
            str(row["run_id"]),
            row["as_of_date"].isoformat(),
            row["finished_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            verdict,
            _batch_range(row["since_batch_id"], row["through_batch_id"]),
            "" if row["accepted"] else str(row["blocking"]),
            "" if row["accepted"] else str(row["warnings"]),
            escape(detail or ""),
        )
    print_table(table)


def read_history(dsn: str, limit: int) -> list[dict[str, Any]] | None:
    """The newest `limit` rows of `raw_files.gate_runs`, newest first; None when no gate ever ran."""
    with connect(dsn) as conn:
        exists = conn.execute("select to_regclass(%s)", (f"{RAW_SCHEMA}.gate_runs",)).fetchone()
        if not exists or exists[0] is None:
            return None
        cursor = conn.execute(
            "select run_id, as_of_date, finished_at, passed, accepted, since_batch_id, "
            f"through_batch_id, blocking, warnings, report, note from {RAW_SCHEMA}.gate_runs "
            "order by run_id desc limit %s",
            (limit,),
        )
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def print_table(table: Table) -> None:
    """A table on the terminal's width; piped to a file or captured, as wide as it needs (up to LOG_WIDTH),
    so that a log keeps each check's name and each note on one line."""
    wide = console if console.is_terminal else Console(file=console.file, width=max(console.width, LOG_WIDTH))
    wide.print(table)


def print_checks(result: GateResult, *, show_all: bool = False) -> None:
    """A table of the checks: name, table, severity, status, observed vs tolerance (problems only unless show_all)."""
    shown = [c for c in result.checks if show_all or c.status != "passed"]
    hidden = len(result.checks) - len(shown)
    layers = ", ".join(f"{layer}: {schema}" for layer, schema in result.schemas.items())
    console.print(f"Quality gate, night of {result.as_of}; validated {layers}", soft_wrap=True)
    table = Table(title="Checks" if show_all else "Checks that did not simply pass")
    table.add_column("check", overflow="fold")
    table.add_column("table", overflow="fold")
    table.add_column("severity")
    table.add_column("status")
    table.add_column("observed", justify="right")
    table.add_column("tolerance", justify="right")
    for check in shown:
        style = STATUS_STYLE.get(check.status, "white")
        table.add_row(
            escape(check.name),
            escape(check.table),
            check.severity,
            f"[{style}]{check.status}[/{style}]",
            escape(format_observed(check)),
            format_tolerance(check.tolerance),
        )
    if shown:
        print_table(table)
    if hidden:
        console.print(f"{hidden} passed check(s) not listed (--all lists every check).")


def format_observed(check: CheckResult) -> str:
    """What the check saw: unexpected rows (of the rows examined, with their share), or GX's observed value."""
    if check.error:
        return "could not run"
    if check.status == "skipped":
        return "—"
    observed = check.observed
    if observed is None:
        return "—"
    if isinstance(observed, int) and check.element_count is not None:
        text = f"{observed:,} of {check.element_count:,}"
        if check.unexpected_fraction is not None and observed:
            text += f" ({format_share(check.unexpected_fraction)})"
        return text
    if isinstance(observed, int):
        return f"{observed:,}"
    return str(observed)


def format_tolerance(tolerance: float | None) -> str:
    """A check's tolerance as a percentage, or a dash when it has none."""
    return "—" if tolerance is None else format_share(tolerance)


def format_share(fraction: float) -> str:
    """0.0123 as `1.23%` (three significant digits, as in the reports)."""
    return f"{fraction * 100:.3g}%"


def _candidates_missing(result: GateResult) -> bool:
    candidates = {schema for layer, schema in result.schemas.items() if layer in ("core", "marts")}
    return any(
        c.error and "does not exist" in c.error and c.table.split(".", 1)[0] in candidates for c in result.blocking
    )


def _batch_range(since: int, through: int) -> str:
    return "none new" if through <= since else (str(through) if through == since + 1 else f"{since + 1}..{through}")


def _parse_layers(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [layer for layer in chosen if layer not in LAYERS]
    if unknown or not chosen:
        _fail(f"--layers takes a comma-separated list of {', '.join(LAYERS)}; got {value!r}")
    return chosen


def _parse_date(value: str) -> date:
    """A `--date` value, with a bad date as an error (exit 1): exit 2 means blocked here."""
    try:
        return parse_date(value, "--date")
    except typer.BadParameter as exc:
        _fail(exc.format_message())


def _warehouse() -> str:
    """The warehouse URL exactly as the other commands find it."""
    return resolve_warehouse(console, err)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)
