"""The `b2b` command line: generate a demo company, load a file drop, run the demo."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from b2b_pipeline.config import b2b_home
from b2b_pipeline.filedrop.loader import LoadReport, load_drop
from b2b_pipeline.warehouse import redact, warehouse_dsn

app = typer.Typer(
    help="B2B sales analytics: extract CRM and billing exports, build the star schema and metric marts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

DEMO_SEED = 42
DEMO_ACCOUNTS = 2000
DEMO_START = date(2024, 1, 1)
DEMO_END = date(2026, 11, 25)
DEMO_NIGHTLY_DAYS = 7
DEMO_ERROR_RATE = 0.001


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
) -> None:
    """Write the file drop of a synthetic B2B seller (CRM and billing exports)."""
    summary = _generate(
        out, seed, accounts, _date(start, "--start"), _date(end, "--end"), nightly_days, gzip, error_rate
    )
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
        list[str] | None, typer.Option(help="Load only this source system (crm, billing); repeatable.")
    ] = None,
) -> None:
    """Extract & load a file drop into the warehouse's raw_files schema (new files only)."""
    dsn = _dsn()
    report = _load(dsn, source_dir, tuple(system) if system else None)
    _print_load_report(report)
    if report.refusals:
        raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Generate the demo company under B2B_HOME, load it, and show what landed and what was quarantined."""
    home = b2b_home()
    drop = home / "demo" / "drop"
    marker = drop / ".complete"
    if marker.exists():
        console.print(f"Demo company already generated in {drop}")
    else:
        _generate(drop, DEMO_SEED, DEMO_ACCOUNTS, DEMO_START, DEMO_END, DEMO_NIGHTLY_DAYS, False, DEMO_ERROR_RATE)
        marker.write_text("generated\n")
    dsn = _dsn()
    report = _load(dsn, drop, None)
    _print_load_report(report)
    _print_warehouse_totals(dsn)


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint=option) from None


def _dsn() -> str:
    try:
        dsn = warehouse_dsn()
    except Exception as exc:  # the embedded server failed to start: say why, without a traceback
        err.print(f"[red]error:[/red] cannot start the embedded warehouse: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Warehouse: {redact(dsn)}")
    return dsn


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
    from b2b_pipeline.generate import generate_company

    if end < start:
        raise typer.BadParameter("--end is before --start")
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
        except ValueError as exc:
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
