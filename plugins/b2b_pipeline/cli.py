"""The `b2b` command line: generate a demo company, load a file drop, run the demo."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from datetime import date
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from b2b_pipeline.cli_support import parse_date, resolve_warehouse, warehouse_night_lock
from b2b_pipeline.config import BILLING_SOURCES, CRM_SOURCES, b2b_home
from b2b_pipeline.filedrop.loader import LoadReport, load_drop
from b2b_pipeline.filedrop.spec import SYSTEMS
from b2b_pipeline.night import Night
from b2b_pipeline.quality.commands import gate_app, print_table
from b2b_pipeline.warehouse import WarehouseUnavailable, check_warehouse, one_line, redact, warehouse_dsn

app = typer.Typer(
    help="B2B sales analytics: extract CRM and billing exports, build the star schema and metric marts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(gate_app, name="gate")
config_app = typer.Typer(
    help="The deployment's settings (b2b.yml under B2B_HOME, or B2B_* variables).", no_args_is_help=True
)
app.add_typer(config_app, name="config")
console = Console(file=sys.__stdout__)
err = Console(file=sys.__stderr__)

DEMO_SEED = 42
DEMO_ACCOUNTS = 2000
DEMO_START = date(2024, 1, 1)
DEMO_END = date(2026, 11, 25)
DEMO_NIGHTLY_DAYS = 7
DEMO_ERROR_RATE = 0.0005
DEMO_COMPLETE = ".complete"  # `b2b demo`'s marker in its drop folder: the drop was generated to the end
# the values of `b2b load --system`: an unknown one is a usage error (exit 2), not an empty batch
System = Enum("System", {name: name for name in SYSTEMS}, type=str)
# the values of `b2b demo --crm` and `--billing`
CrmSource = Enum("CrmSource", {name: name for name in CRM_SOURCES}, type=str)
BillingSource = Enum("BillingSource", {name: name for name in BILLING_SOURCES}, type=str)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the drop to (crm/ and billing/).")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = DEMO_SEED,
    accounts: Annotated[int, typer.Option(min=1, help="CRM accounts to simulate.")] = DEMO_ACCOUNTS,
    start: Annotated[str, typer.Option(help="First simulated day, YYYY-MM-DD.")] = DEMO_START.isoformat(),
    end: Annotated[str, typer.Option(help="Last simulated day, YYYY-MM-DD.")] = DEMO_END.isoformat(),
    nightly_days: Annotated[
        int, typer.Option(min=0, help="Write the last N days as dated change folders instead of the base export.")
    ] = 0,
    gzip: Annotated[bool, typer.Option("--gzip", help="Compress every file.")] = False,
    error_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of rows made malformed (for quarantine demos).")
    ] = 0.0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the drop --out already holds (its crm/ and billing/ folders).")
    ] = False,
) -> None:
    """Write the file drop of a synthetic B2B seller (CRM and billing exports).

    Refuses (exit 1, nothing written or deleted) a folder that already holds a drop, unless --force.
    """
    first, last = _date(start, "--start"), _date(end, "--end")
    if not force:
        _refuse_existing_drop(out)
    summary = _generate(out, seed, accounts, first, last, nightly_days, gzip, error_rate)
    table = Table(title=f"Generated {out}")
    table.add_column("entity")
    table.add_column("rows", justify="right")
    for entity, count in sorted(summary.rows.items()):
        table.add_row(entity, f"{count:,}")
    console.print(table)
    console.print(f"{len(summary.files)} files, {summary.bad_rows:,} malformed rows.")


@app.command()
def load(
    source_dir: Annotated[Path, typer.Option(help="The drop root (holding crm/ and billing/).")],
    system: Annotated[
        list[System] | None,
        typer.Option(case_sensitive=False, help="Load only this source system; repeatable."),
    ] = None,
) -> None:
    """Extract & load a file drop into the warehouse's raw_files schema (new files only)."""
    dsn = _dsn()
    report = _load(dsn, source_dir, tuple(s.value for s in system) if system else None)
    _print_load_report(report)
    if report.refusals:
        raise typer.Exit(1)


@app.command()
def run(
    date_: Annotated[
        str,
        typer.Option(
            "--date", help="The night's as-of date D (it counts data before D+1 00:00 of the reporting time zone)."
        ),
    ],
    source_dir: Annotated[Path, typer.Option(help="The drop root (holding crm/ and billing/).")],
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="When another night is running on the warehouse or B2B_HOME, exit 1 at once."),
    ] = False,
) -> None:
    """Run one night through the real Airflow DAG: extract, dbt, quality gate, publish, summary.

    One night at a time per warehouse and per B2B_HOME: while another runs, this one waits
    (saying which night it waits for), or with --no-wait exits 1 at once.
    Exits 0 when the night published, 2 when the quality gate blocked it (the published
    marts stay as they were), 1 on any other error.
    """
    night = Night(as_of=_date(date_, "--date"), source_dir=source_dir.expanduser().resolve())
    if not night.source_dir.is_dir():
        err.print(f"[red]error:[/red] the drop folder {night.source_dir} does not exist")
        raise typer.Exit(1)
    raise typer.Exit(_run_night(night, wait=not no_wait))


@app.command()
def demo(
    crm: Annotated[
        CrmSource,
        typer.Option(
            case_sensitive=False,
            help="Where the night reads the CRM: the drop's files, or a local fake of amoCRM, Bitrix24 or "
            "HubSpot that the demo starts, seeded from the same drop.",
        ),
    ] = CrmSource.files,
    billing: Annotated[
        BillingSource,
        typer.Option(
            case_sensitive=False,
            help="Where the night reads billing: the drop's files, or a local fake of Stripe that the demo "
            "starts, seeded from the same drop (fx_rates still come from the drop).",
        ),
    ] = BillingSource.files,
    accounts: Annotated[int, typer.Option(min=1, help="CRM accounts of the demo company.")] = DEMO_ACCOUNTS,
) -> None:
    """Generate the demo company under B2B_HOME and run its last night; print the metrics and the reports.

    With --crm amocrm (bitrix24, hubspot) the night reads the CRM through the API connector from a
    fake of that service on 127.0.0.1, started here and stopped after; with --billing stripe, billing
    likewise from a fake of Stripe.
    """
    home = b2b_home()
    drop = home / "demo" / "drop"
    marker = drop / DEMO_COMPLETE
    wanted = f"generated {accounts} accounts\n"
    if marker.exists() and _demo_marker(marker) != wanted:
        # its records are in the warehouse: another company in the same drop would mix with them
        err.print(
            f"[red]error:[/red] the demo company in {drop} was {_demo_marker(marker).strip()}, not {accounts:,}; "
            "run the demo with another B2B_HOME (and warehouse) for another size.",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    if marker.exists():
        console.print(f"Demo company already generated in {drop}")
    else:
        _generate(drop, DEMO_SEED, accounts, DEMO_START, DEMO_END, DEMO_NIGHTLY_DAYS, False, DEMO_ERROR_RATE)
        marker.write_text(wanted)
    night = Night(as_of=DEMO_END, source_dir=drop)
    through_fakes = [source.value for source in (crm, billing) if source.value != "files"]
    code = _run_demo_night_through_fakes(night, through_fakes) if through_fakes else _run_night(night)
    with contextlib.suppress(psycopg.Error):
        _print_warehouse_totals(warehouse_dsn())
    raise typer.Exit(code)


def _demo_marker(marker: Path) -> str:
    """The demo drop's marker text; a marker of an older release ("generated") meant the default size."""
    text = marker.read_text()
    return f"generated {DEMO_ACCOUNTS} accounts\n" if text == "generated\n" else text


def _run_demo_night_through_fakes(night: Night, sources: list[str]) -> int:
    from b2b_pipeline.orchestration.demo_sources import (
        DEMO_FAKE_REQUESTS_PER_SECOND,
        DOCUMENTED_REQUESTS_PER_SECOND,
        serve_demo_sources,
    )

    with serve_demo_sources(sources, night.source_dir, night.as_of) as served:
        by_system = {s.system: f"a local fake of {s.title} at 127.0.0.1" for s in served}
        console.print(
            f"CRM from {by_system.get('crm', 'the drop')}, billing from {by_system.get('billing', 'the drop')} "
            f"(seeded from {night.source_dir}, clocks at the end of {night.as_of}).",
            soft_wrap=True,
        )
        code = _run_night(night)
        for fake in served:
            with contextlib.suppress(psycopg.Error):
                _print_landed(fake.source, warehouse_dsn())
            console.print(
                f"The fake {fake.title} answered {fake.requests():,} requests "
                f"at up to {DEMO_FAKE_REQUESTS_PER_SECOND} a second; at {fake.title}'s documented "
                f"{DOCUMENTED_REQUESTS_PER_SECOND[fake.source]:g} a second they take about "
                f"{fake.documented_minutes():.1f} min.",
                soft_wrap=True,
            )
    return code


@app.command("airflow")
def airflow_ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the Airflow UI on localhost.")] = 8080,
) -> None:
    """Start Airflow standalone on localhost with the nightly DAG and the warehouse connection configured.

    Refuses Airflow's own log-server ports (usage error, exit 2) and a port already taken on 127.0.0.1
    (exit 1) before anything starts. Ctrl-C or SIGTERM stops every process standalone started (exit 0;
    1 when some had to be killed)."""
    from b2b_pipeline.orchestration.local_airflow import (
        airflow_own_ports,
        port_unavailable,
        prepare_airflow,
        run_standalone,
        standalone_environment,
    )
    from b2b_pipeline.transform.manifest import ensure_manifest

    own = airflow_own_ports(os.environ)
    if port in own:
        raise typer.BadParameter(
            f"{port} is {own[port]}, which standalone starts itself; choose another port (e.g. 8080)",
            param_hint="--port",
        )
    taken = port_unavailable(port)
    if taken:
        err.print(f"[red]error:[/red] port {port} on 127.0.0.1 is {taken}; choose another with --port")
        raise typer.Exit(1)
    for other, what in own.items():
        if port_unavailable(other):
            err.print(f"[yellow]warning:[/yellow] port {other} ({what}) is already in use: is another Airflow running?")
    home = b2b_home()
    dsn = _dsn()
    ensure_manifest(dsn)
    prepare_airflow(home, dsn)
    env = standalone_environment(home, dsn, port, os.environ)
    passwords = home / "airflow" / "simple_auth_manager_passwords.json.generated"
    console.print(f"Airflow UI on http://localhost:{port}; the admin password is written to {passwords}")
    console.print(
        f"Sized for this machine: parallelism {env['AIRFLOW__CORE__PARALLELISM']}, "
        f"{env['AIRFLOW__API__WORKERS']} API server worker(s). Ctrl-C stops Airflow."
    )
    raise typer.Exit(run_standalone(env, say=lambda message: err.print(message, soft_wrap=True)))


@app.command()
def report(
    date_: Annotated[
        str | None, typer.Option("--date", help="The night to report (default: the latest published).")
    ] = None,
    docs: Annotated[bool, typer.Option("--docs", help="Regenerate the dbt docs the report links to.")] = False,
) -> None:
    """Rebuild the nightly HTML report from the published marts."""
    from b2b_pipeline.reporting.sales_report import ReportError, report_command

    as_of = _date(date_, "--date") if date_ else None
    try:
        path = report_command(as_of, dbt_docs=docs, dsn=_dsn())
    except ReportError as exc:  # no published night, or --date names a night that never ran
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(f"Report: {path}")


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings and where each comes from: the default, the settings file or an
    environment variable (which wins over the file). Exit 1 naming the bad value when one is invalid."""
    from b2b_pipeline.config import effective_settings, settings_file

    try:
        settings = effective_settings()
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    path = settings_file()
    missing = "" if path.is_file() else " (not present: defaults and environment only)"
    # on one line whatever the console's width: a log or a script reads it
    console.print(f"Settings file: {escape(str(path))}{missing}", soft_wrap=True)
    table = Table()
    for column in ("setting", "value", "from", "variable", "meaning"):
        table.add_column(column, overflow="fold")
    for setting in settings:
        origin = path.name if setting.origin == str(path) else setting.origin  # the file's path is printed above
        table.add_row(setting.key, escape(setting.value), escape(origin), setting.env, setting.help)
    print_table(table)


@app.command()
def bench(
    sizes: Annotated[
        str, typer.Option(help="Company sizes to measure: S (2,000 accounts), M (20,000), L (200,000).")
    ] = "S,M,L",
    out: Annotated[Path, typer.Option(help="Where the JSON and Markdown reports go.")] = Path("bench/results"),
    cache: Annotated[Path, typer.Option(help="Where generated companies are kept between runs.")] = Path("bench/cache"),
    api: Annotated[
        bool,
        typer.Option(
            "--api",
            help="Instead: the requests a full and a nightly extraction through each API source need "
            "(amoCRM, Bitrix24, HubSpot, Stripe, against their local fakes), and their time at each "
            "service's documented rate limit.",
        ),
    ] = False,
    source: Annotated[
        list[str] | None,
        typer.Option(help="With --api: only this source (amocrm, bitrix24, hubspot, stripe); repeatable."),
    ] = None,
) -> None:
    """Measure load vs plain COPY, full and incremental nights, the gate's share, parse time and memory;
    with --api, the API extraction's requests instead."""
    from b2b_pipeline.bench.harness import SIZES, run_bench

    chosen = [s.strip().upper() for s in sizes.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SIZES]
    if unknown or not chosen:
        raise typer.BadParameter(f"sizes are {', '.join(SIZES)}; got {sizes!r}", param_hint="--sizes")
    from b2b_pipeline.bench.api_extract import SOURCES, run_api_bench

    sources = tuple(source or SOURCES)
    if not set(sources) <= set(SOURCES) or (source and not api):
        raise typer.BadParameter(f"with --api, sources are {', '.join(SOURCES)}; got {source!r}", param_hint="--source")
    home = b2b_home() / "bench"
    dsn = _dsn()
    if api:
        json_path, markdown = run_api_bench(
            chosen, dsn, home, cache.resolve(), out.resolve(), lambda m: console.print(m), sources=sources
        )
    else:
        json_path, markdown = run_bench(chosen, dsn, home, cache.resolve(), out.resolve(), lambda m: console.print(m))
    console.print(markdown)
    console.print(f"Results: {json_path} and {json_path.with_suffix('.md')}")


def _date(value: str, option: str) -> date:
    return parse_date(value, option)


def _dsn() -> str:
    return resolve_warehouse(console, err)


def _refuse_existing_drop(out: Path) -> None:
    """Exit 1, touching nothing, when `out` already holds a file drop (or the demo's marker)."""
    from b2b_pipeline.generate import existing_drop

    found = existing_drop(out)
    if (out / DEMO_COMPLETE).exists():
        found.append(out / DEMO_COMPLETE)
    if found:
        shown = ", ".join(p.relative_to(out).as_posix() for p in found[:3]) + (", ..." if len(found) > 3 else "")
        err.print(
            f"[red]error:[/red] {out} already holds a file drop ({len(found):,} files: {shown}); nothing was "
            "written. --force replaces it (removes its crm/ and billing/ folders first), or choose another --out.",
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _generate(
    out: Path,
    seed: int,
    accounts: int,
    start: date,
    end: date,
    nightly_days: int,
    gzip: bool,
    error_rate: float,
):
    """Generate the drop into `out`, replacing whatever drop it holds (its crm/, billing/ and markers).

    The `generate` command refuses an existing drop before calling this unless --force; `b2b demo`
    calls it only when its drop lacks DEMO_COMPLETE, so a drop half-written by a killed run is replaced.
    """
    from b2b_pipeline.generate import check_arguments, generate_company, remove_drop

    if end < start:
        raise typer.BadParameter("--end is before --start")
    try:
        check_arguments(accounts=accounts, start=start, end=end, nightly_days=nightly_days, error_rate=error_rate)
        (out / DEMO_COMPLETE).unlink(missing_ok=True)  # first: a drop being replaced is no complete demo drop
        removed = remove_drop(out)
    except (ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if removed:
        console.print(f"Replacing the file drop in {out}: removed {removed:,} files of crm/ and billing/.")
    with Progress(
        TextColumn("[bold]generating[/bold] {task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{accounts:,} accounts", total=accounts)
        try:
            return generate_company(
                out,
                seed=seed,
                accounts=accounts,
                start=start,
                end=end,
                nightly_days=nightly_days,
                gzip=gzip,
                error_rate=error_rate,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (ValueError, FileExistsError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc


def _load(dsn: str, source_dir: Path, systems: tuple[str, ...] | None) -> LoadReport:
    with Progress(
        TextColumn("[bold]loading[/bold] {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(file: str, done: int, total: int) -> None:
            if file not in tasks:
                tasks[file] = bar.add_task(file, total=total)
            bar.update(tasks[file], completed=done)

        try:
            with warehouse_night_lock(dsn, "b2b-load", "a manual load", err):
                return load_drop(dsn, source_dir, systems=systems, progress=progress)
        except FileNotFoundError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        except psycopg.OperationalError as exc:
            err.print(f"[red]error:[/red] cannot reach the warehouse {redact(dsn)}: {exc}")
            raise typer.Exit(1) from exc


def _print_load_report(report: LoadReport) -> None:
    table = Table(title=f"Load batch {report.batch_id} from {report.source_dir}")
    table.add_column("entity")
    table.add_column("rows loaded", justify="right")
    table.add_column("quarantined", justify="right")
    for entity, (loaded, quarantined) in report.by_entity().items():
        table.add_row(entity, f"{loaded:,}", f"{quarantined:,}" if quarantined else "0")
    console.print(table)
    console.print(
        f"{report.count('loaded')} files loaded, {report.count('skipped')} skipped (loaded before), "
        f"{report.count('refused')} refused; {report.rows_loaded:,} rows loaded, "
        f"{report.rows_quarantined:,} quarantined."
    )
    for refusal in report.refusals:
        err.print(f"[red]refused[/red] {refusal.file}: {refusal.reason}")


def _print_warehouse_totals(dsn: str) -> None:
    """Rows in the raw layer per entity over all batches, and a few quarantined examples."""
    with psycopg.connect(dsn) as conn:
        totals = conn.execute(
            "select entity, sum(rows_loaded), sum(rows_quarantined), count(*) from raw_files.file_loads "
            "group by entity order by entity"
        ).fetchall()
        examples = conn.execute(
            "select file, line, reason from raw_files.quarantine order by quarantined_at desc, file, line limit 5"
        ).fetchall()
    table = Table(title="Raw layer (all batches)")
    for name in ("entity", "rows landed", "quarantined", "files"):
        table.add_column(name, justify="left" if name == "entity" else "right")
    for entity, loaded, quarantined, files in totals:
        table.add_row(entity, f"{loaded:,}", f"{quarantined:,}", str(files))
    console.print(table)
    if examples:
        console.print("Quarantined, for example:")
        for file, line, reason in examples:
            console.print(f"  {file}:{line}: {reason}")


def _print_landed(source: str, dsn: str) -> None:
    """Rows in the raw layer of an API source per stream (every version landed so far)."""
    from b2b_pipeline.sources.landing import landed_rows, raw_schema

    table = Table(title=f"Raw layer: {raw_schema(source)} (every version landed)")
    table.add_column("stream")
    table.add_column("rows", justify="right")
    for stream, rows in landed_rows(dsn, source).items():
        table.add_row(stream, f"{rows:,}")
    console.print(table)


TASK_STYLE = {"running": "yellow", "success": "green", "failed": "red", "skipped": "dim"}


def _run_night(night: Night, wait: bool = True) -> int:
    """Run the night through the DAG with per-task progress; print the outcome; the exit code.

    The warehouse is checked first (a wrong URL, login or database fails in seconds, with the
    cause); then the night holds B2B_HOME's lock and the warehouse's night lock until it ends.
    """
    from b2b_pipeline.config import effective_settings
    from b2b_pipeline.night_lock import HomeLockBusy, NightLockBusy, home_lock, new_run_id, night_lock

    home = b2b_home()
    try:
        effective_settings()  # a bad setting stops the night before anything runs, naming where it is
    except ValueError as exc:
        err.print(f"[red]Failed[/red]: {escape(str(exc))}", soft_wrap=True)
        return 1
    dsn = _dsn()
    try:
        check_warehouse(dsn)
    except WarehouseUnavailable as exc:
        err.print(f"[red]Failed[/red]: {escape(str(exc))}", soft_wrap=True)
        return 1
    name = night.as_of.isoformat()
    try:
        with (
            home_lock(home, name, wait=wait, on_wait=lambda m: err.print(f"Waiting: {escape(m)}", soft_wrap=True)),
            night_lock(
                dsn,
                new_run_id("b2b-run"),
                name,
                wait=wait,
                on_wait=lambda h: err.print(
                    f"Waiting: another night is running on the warehouse: {escape(h.describe())}", soft_wrap=True
                ),
            ),
        ):
            return _run_locked_night(night, home, dsn)
    except (HomeLockBusy, NightLockBusy) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return 1
    except psycopg.Error as exc:  # the warehouse went away while the lock was taken or given back
        err.print(f"[red]Failed[/red]: the warehouse {redact(dsn)}: {escape(one_line(exc))}", soft_wrap=True)
        return 1


def _run_locked_night(night: Night, home: Path, dsn: str) -> int:
    from b2b_pipeline.orchestration.local_airflow import run_night
    from b2b_pipeline.quality.report import html_report_path
    from b2b_pipeline.reporting.sales_report import report_page

    log_file = home / "logs" / f"night-{night.as_of.isoformat()}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"Night {night.as_of} from {night.source_dir}; Airflow's log: {log_file}")

    done = 0

    def on_task(task_id: str, state: str) -> None:
        nonlocal done
        if state == "running":
            return
        done += 1
        style = TASK_STYLE.get(state, "white")
        console.print(f"  [{style}]{state:>7}[/{style}] {done:>3}  {task_id}", no_wrap=True, overflow="ellipsis")

    # Airflow's own logging goes to the night's log file; the sink stays open until the process
    # ends, because handlers Airflow configured during the run keep writing to it (at exit too).
    sink = log_file.open("a", encoding="utf-8")
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            outcome = run_night(home, dsn, night, on_task)
    except Exception as exc:
        err.print(
            f"[red]Failed[/red]: the night could not run: {escape(one_line(exc))}. See {log_file}", soft_wrap=True
        )
        return 1
    if outcome.state == "published":
        _print_headline(dsn, night)
        console.print(f"[green]Published[/green] the marts of {night.as_of}.")
        console.print(f"Report: {report_page(home, night.as_of)}")
        console.print(f"Quality: {html_report_path(home, night.as_of)}")
    elif outcome.state == "blocked":
        err.print("[red]Blocked[/red] by the quality gate; the published marts stay as they were.")
        for check in (outcome.gate or {}).get("checks", []):
            if not check.get("success") and check.get("severity") == "block":
                err.print(f"  - {check.get('name')}: {check.get('summary') or check.get('observed')}")
        err.print(f"Report: {html_report_path(home, night.as_of)}")
    else:
        err.print(f"[red]Failed[/red]: {escape(outcome.error or 'the night failed')}. See {log_file}", soft_wrap=True)
    return outcome.exit_code


def _print_headline(dsn: str, night: Night) -> None:
    from b2b_pipeline.nightly import headline_metrics

    metrics = headline_metrics(dsn, night.as_of)
    currency = metrics.pop("reporting_currency")
    zone = metrics.pop("reporting_timezone")
    table = Table(title=f"Headline metrics, {night.as_of:%B %Y} to {night.as_of} ({zone}), amounts in {currency}")
    table.add_column("metric")
    table.add_column("value", justify="right", overflow="fold")  # a long amount wraps, never "…"
    for name, value in metrics.items():
        # counts are ints; numerics come as exact decimal text (never float) and are formatted as Decimal
        number = value if value is None or isinstance(value, int) else Decimal(str(value))
        if number is None:
            shown = "—"
        elif name.endswith(("_rate", "_share")):
            shown = f"{number:.1%}"
        elif isinstance(number, Decimal):
            shown = f"{number:,.2f}"
        else:
            shown = f"{number:,}"
        money = name in ("won_amount", "avg_deal_size", "revenue", "potential_value")
        table.add_row(name.replace("_", " ") + (f" ({currency})" if money else ""), shown)
    console.print(table)
