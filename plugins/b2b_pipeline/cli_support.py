"""What the `b2b` commands share: reading a date option, and finding the warehouse with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import typer
from rich.console import Console

from b2b_pipeline.warehouse import redact, warehouse_dsn


def parse_date(value: str, option: str) -> date:
    """A YYYY-MM-DD option value; a usage error naming the option otherwise."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint=option) from None


def resolve_warehouse(console: Console, err: Console) -> str:
    """The warehouse URL (B2B_WAREHOUSE_DSN, else the embedded server, started), announced on `console`;
    exit 1 with the reason on `err` when the embedded server cannot start."""
    try:
        dsn = warehouse_dsn()
    except Exception as exc:  # the embedded server failed to start: say why, without a traceback
        err.print(f"[red]error:[/red] cannot start the embedded warehouse: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Warehouse: {redact(dsn)}", soft_wrap=True)
    return dsn


@contextmanager
def warehouse_night_lock(dsn: str, kind: str, night: str, err: Console) -> Iterator[None]:
    """Hold the warehouse's night lock for a command that writes to it or reads a night's candidates
    (`b2b load`, `b2b gate run`, `b2b gate accept`), saying on `err` whom it waits for."""
    from b2b_pipeline.night_lock import new_run_id, night_lock

    def waiting(holder) -> None:
        err.print(f"Waiting: another night is running on the warehouse: {holder.describe()}", soft_wrap=True)

    with night_lock(dsn, new_run_id(kind), night, on_wait=waiting):
        yield
