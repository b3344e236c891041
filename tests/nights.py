"""Whole nights through the `b2b` command, shared by the tests that compare a night's published marts."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

B2B = str(Path(sys.executable).with_name("b2b"))

# the company of the whole-night tests of the DAG: generated once per session (see `reference_night`)
AS_OF = dt.date(2026, 5, 31)
COMPANY = {"seed": 5, "accounts": 120, "start": dt.date(2025, 6, 1), "end": AS_OF}


def b2b_run(
    home: Path, dsn: str, as_of: dt.date, drop: Path, timeout: float = 1800, **extra_env: str
) -> subprocess.CompletedProcess:
    """`b2b run` of one night, as a user runs it: its own process, the night's output captured."""
    env = {**os.environ, "B2B_HOME": str(home), "B2B_WAREHOUSE_DSN": dsn, **extra_env}
    return subprocess.run(
        [B2B, "run", "--date", as_of.isoformat(), "--source-dir", str(drop)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class ReferenceNight:
    """The first night of the company through `b2b run`: where it ran and what it published."""

    drop: Path  # the company's file drop: read it, copy it before adding files
    home: Path
    dsn: str  # the warehouse it published to (a database of the embedded server)
    run: subprocess.CompletedProcess
    marts: dict[str, str]  # fingerprint() of the published marts right after the night


def bad_night(drop: Path, day: dt.date) -> None:
    """Add a night to `drop` that the quality gate blocks: deals in a stage that no stage row maps, and
    many malformed deals."""
    folder = drop / "crm" / day.isoformat()
    folder.mkdir(parents=True)
    lines = ["deal_id,account_id,stage_id,amount,currency,status,created_at,updated_at"]
    lines += [f"X{i},{i},no_such_stage,100,RUB,open,{day}T10:00:00Z,{day}T10:00:00Z" for i in range(30)]
    lines += [f"Y{i},{i},no_such_stage,-5,RUB,open,{day}T10:00:00Z,{day}T10:00:00Z" for i in range(300)]
    (folder / "deals.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
