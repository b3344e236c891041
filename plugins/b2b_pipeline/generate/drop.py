"""`generate_company`: write a demo company's file drop (docs/sources.md), streaming, one account at a time.

Output layout (`nightly_days = N`):

    out/crm/<entity>.csv           base export: each record's latest version as of day end - N
    out/billing/<entity>.csv       (BOM, `;`, decimal comma)
    out/crm/activities.jsonl
    out/crm/YYYY-MM-DD/...         N day folders: the versions new or changed that day
    out/billing/YYYY-MM-DD/...
    out/.b2b-generate.json         what was generated, with which arguments (not part of the drop)
"""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from b2b_pipeline.filedrop.spec import ENTITIES, SYSTEMS, Entity

from . import fx
from .catalog import STAGES, sales_team
from .clock import DAY, epoch_of, iso
from .company import World, simulate_account
from .errors import corrupt
from .versions import Log, Record, Version
from .writers import EntityWriter, file_name

# rows that other rows point at are never made malformed: a quarantined account would orphan all
# its deals, and the quality gate (rightly) blocks a night with more than 0.1% orphan deals
NEVER_CORRUPTED = frozenset({"users", "accounts", "stages", "customers"})
MAX_NIGHTLY_DAYS = 60
MAX_ERROR_RATE = 0.5
MARKER = ".b2b-generate.json"
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ENTITY_BY_NAME = {e.name: e for e in ENTITIES}


@dataclass
class GenerationSummary:
    out: Path
    files: list[Path]  # every file written, sorted
    rows: dict[str, int]  # rows per entity name, summed over its files
    bad_rows: int  # rows made malformed on purpose (error_rate)
    accounts: int = 0
    day_folders: list[str] = field(default_factory=list)  # YYYY-MM-DD of the nightly folders
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class _Sink:
    """Routes record versions to the base export or to the day folders, and writes them."""

    def __init__(self, out: Path, seed: int, gz: bool, base_cutoff: int, days: list[date], error_rate: float) -> None:
        self.out = out
        self.seed = seed
        self.gz = gz
        self.base_cutoff = base_cutoff
        self.days = [d.isoformat() for d in days]
        self.error_rate = error_rate
        self.bad_rows = 0
        self.base = {e.name: self._writer(e, None) for e in ENTITIES}
        self.daily: dict[tuple[int, str], EntityWriter] = {}
        self._err_rng: dict[Path, random.Random] = {}
        for w in self.base.values():
            w.open()  # every base file exists, even when it has no rows
        for system in SYSTEMS:  # every day folder exists; its files only when they have rows
            for day in self.days:
                (out / system / day).mkdir(parents=True, exist_ok=True)

    def _writer(self, e: Entity, day: int | None) -> EntityWriter:
        folder = self.out / e.system if day is None else self.out / e.system / self.days[day]
        return EntityWriter(folder / file_name(e, self.gz), e, self.gz, spool=day is not None)

    def _write(self, writer: EntityWriter, row: dict[str, str]) -> None:
        if self.error_rate > 0.0 and writer.entity.name not in NEVER_CORRUPTED:
            rng = self._err_rng.get(writer.path)
            if rng is None:
                rel = writer.path.relative_to(self.out).as_posix()
                rng = self._err_rng[writer.path] = random.Random(f"{self.seed}:errors:{rel}")
            if rng.random() < self.error_rate:
                row = corrupt(rng, writer.entity, row)
                self.bad_rows += 1
        writer.write(row)

    def flush(self, log: Log) -> None:
        for name, records in log.records.items():
            e = _ENTITY_BY_NAME[name]
            for versions in records.values():
                self._route(e, versions)

    def _route(self, e: Entity, versions: list[Version]) -> None:
        if len(versions) > 1:
            versions.sort(key=lambda v: v[0])  # stable: equal times keep their order
        cutoff = self.base_cutoff
        base: Version | None = None
        by_day: dict[int, Version] = {}
        for v in versions:
            if v[0] < cutoff:
                base = v
            else:
                by_day[(v[0] - cutoff) // DAY] = v
        if base is not None:
            self._write(self.base[e.name], _render(base))
        for day, v in by_day.items():
            w = self.daily.get((day, e.name))
            if w is None:
                w = self.daily[(day, e.name)] = self._writer(e, day)
            self._write(w, _render(v))

    def close(self) -> list[Path]:
        writers = [*self.base.values(), *self.daily.values()]
        for w in writers:
            w.close()
        return sorted(w.path for w in writers)

    def rows(self) -> dict[str, int]:
        out = {e.name: 0 for e in ENTITIES}
        for w in [*self.base.values(), *self.daily.values()]:
            out[w.entity.name] += w.rows
        return out


def _render(v: Version) -> dict[str, str]:
    """Row values as text: instants (ints) in ISO 8601 in the record's style."""
    _, row, style = v
    return {k: (iso(x, style) if isinstance(x, int) else x) for k, x in row.items()}


def _global_log(seed: int, start: date, end: date, world: World) -> Log:
    """Sales reps, pipeline stages and exchange rates: records no account owns."""
    log = Log(world.horizon)
    for s in STAGES:
        row = {
            "stage_id": s.stage_id,
            "pipeline_id": s.pipeline_id,
            "stage_name": s.name,
            "display_order": str(s.display_order),
            "probability": s.probability,
            "canonical_stage": s.canonical,
        }
        Record("stages", s.stage_id, world.t_start, row).emit(log)
    for rep in world.reps:
        row = {"user_id": rep.user_id, "full_name": rep.full_name, "email": rep.email, "team": rep.team}
        row["is_active"] = "true"
        rec = Record("users", rep.user_id, rep.hired_at, row)
        if rep.left_at is not None:
            rec.change(rep.left_at, is_active="false")
        rec.emit(log)
    for d, currency, rate in fx.daily_rates(seed, start, end):
        row = {"rate_date": d.isoformat(), "currency": currency, "rate": rate}
        log.event("fx_rates", (d, currency), epoch_of(d), row)
    return log


def _our_files(root: Path) -> list[Path]:
    """Files a previous generation may have left under `root` (entity files, dated folders)."""
    names = {file_name(e, gz) for e in ENTITIES for gz in (False, True)}
    found: list[Path] = []
    for system in SYSTEMS:
        folder = root / system
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.name in names:
                found.append(p)
            elif p.is_dir() and _DAY_DIR.match(p.name):
                found.extend(q for q in sorted(p.iterdir()) if q.is_file() and q.name in names)
    return found


def _prepare(out: Path) -> None:
    found = _our_files(out)
    if found and not (out / MARKER).exists():
        raise FileExistsError(
            f"{out} already holds a file drop ({found[0].relative_to(out)}, ...) that this generator did "
            "not write; choose an empty directory"
        )
    for p in found:  # a previous generated drop: replace it
        p.unlink()
    for system in SYSTEMS:
        folder = out / system
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_dir() and _DAY_DIR.match(p.name) and not any(p.iterdir()):
                    p.rmdir()
    (out / MARKER).unlink(missing_ok=True)


def check_arguments(*, accounts: int, start: date, end: date, nightly_days: int, error_rate: float) -> None:
    """Raise ValueError when `generate_company` would refuse these arguments (before it touches `out`)."""
    if accounts < 0:
        raise ValueError(f"accounts must be >= 0, not {accounts}")
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    if not 0 <= nightly_days <= MAX_NIGHTLY_DAYS:
        raise ValueError(f"nightly_days must be between 0 and {MAX_NIGHTLY_DAYS}, not {nightly_days}")
    if nightly_days and end - timedelta(days=nightly_days) < start:
        raise ValueError(f"nightly_days={nightly_days} leaves no base export between {start} and {end}")
    if not 0.0 <= error_rate <= MAX_ERROR_RATE:
        raise ValueError(f"error_rate must be between 0 and {MAX_ERROR_RATE}, not {error_rate}")


def existing_drop(out: Path) -> list[Path]:
    """What makes `out` hold a file drop, sorted: every file under its `crm/` and `billing/` (at any depth,
    whoever wrote it) and the generator's marker. Empty when `out` is missing, empty or holds no drop
    (empty `crm/` or `billing/` folders are no drop)."""
    out = Path(out)
    found: list[Path] = []
    for system in SYSTEMS:
        folder = out / system
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            found.append(folder)
        elif folder.is_dir():
            found.extend(p for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())
    if (out / MARKER).exists():
        found.append(out / MARKER)
    return sorted(found)


def remove_drop(out: Path) -> int:
    """Remove the file drop in `out`: its `crm/` and `billing/` folders entirely (every file of them is
    part of the drop for the loader) and the generator's marker; anything else in `out` stays.
    The number of files removed."""
    out = Path(out)
    removed = len(existing_drop(out))
    for system in SYSTEMS:
        folder = out / system
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
    (out / MARKER).unlink(missing_ok=True)
    return removed


def generate_company(
    out: Path,
    *,
    seed: int = 42,
    accounts: int = 2000,
    start: date = date(2024, 1, 1),
    end: date = date(2026, 11, 25),
    nightly_days: int = 0,
    gzip: bool = False,
    error_rate: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Simulate a B2B seller and write its CRM and billing exports as a file drop under `out`.

    The simulation covers `start` to `end` inclusive. With `nightly_days = N > 0` the base
    export holds each record's latest version as of the end of day `end - N`, and each of the
    last N days gets a dated folder with the versions new or changed that day. Same arguments,
    same bytes. See docs/generator.md.
    """
    began = time.perf_counter()
    out = Path(out)
    check_arguments(accounts=accounts, start=start, end=end, nightly_days=nightly_days, error_rate=error_rate)
    out.mkdir(parents=True, exist_ok=True)
    _prepare(out)

    t_start, horizon = epoch_of(start), epoch_of(end) + DAY
    world = World(seed, t_start, horizon, sales_team(seed, t_start, horizon), random.Random(seed).randrange(10**9))
    days = [end - timedelta(days=nightly_days - 1 - i) for i in range(nightly_days)]
    sink = _Sink(out, seed, gzip, horizon - nightly_days * DAY, days, error_rate)
    try:
        sink.flush(_global_log(seed, start, end, world))
        step = max(1, accounts // 100)
        if progress:
            progress(0, accounts)
        for index in range(accounts):
            sink.flush(simulate_account(world, index))
            if progress and ((index + 1) % step == 0 or index + 1 == accounts):
                progress(index + 1, accounts)
    finally:
        files = sink.close()
    rows = sink.rows()
    summary = GenerationSummary(
        out=out,
        files=files,
        rows=rows,
        bad_rows=sink.bad_rows,
        accounts=accounts,
        day_folders=[d.isoformat() for d in days],
        seconds=time.perf_counter() - began,
    )
    marker = {
        "generator": "b2b_pipeline.generate",
        "arguments": {
            "seed": seed,
            "accounts": accounts,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "nightly_days": nightly_days,
            "gzip": gzip,
            "error_rate": error_rate,
        },
        "files": [p.relative_to(out).as_posix() for p in files],
        "rows": rows,
        "bad_rows": sink.bad_rows,
    }
    (out / MARKER).write_text(json.dumps(marker, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


__all__ = [
    "MAX_NIGHTLY_DAYS",
    "GenerationSummary",
    "check_arguments",
    "existing_drop",
    "generate_company",
    "remove_drop",
]
