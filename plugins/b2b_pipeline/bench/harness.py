"""`b2b bench`: companies of sizes S, M and L, measured side by side in one run.

For each size: the file-drop load against plain COPY of the same files; a full
night (load, dbt, gate, publish) through the real DAG; the same night again
(the warm-up that gives the next night a star published the night before last,
from which it patches the core facts it carries over, as every night after an
install's second does); a nightly increment (the generator's last day of
changes in a dated folder); the gate's share of a
night; the DAG's parse time; and the peak memory (RSS of this process, which
runs every task in-process, and its children) of each step. Companies are
generated once and cached under `bench/cache/`. Results go to
`bench/results/bench-<timestamp>.json` and `.md`.

Numbers are measured, never asserted: machines are shared and noisy.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from b2b_pipeline.bench.load import benchmark_drop, benchmark_load, scratch_database, summarize
from b2b_pipeline.night import Night

SIZES: dict[str, int] = {"S": 2_000, "M": 20_000, "L": 200_000}
SEED = 42
START = date(2024, 1, 1)
END = date(2026, 11, 25)
# the nights each size runs, in order (report keys)
NIGHTS = ("full_night", "second_night", "increment")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Company:
    size: str
    accounts: int
    base: Path  # the drop without the last day's folder
    increment: list[Path]  # the last day's dated folders (crm/ and billing/)
    rows: int
    increment_rows: int


def cached_company(root: Path, size: str, say: Say) -> Company:
    """Generate the company of `size` once (seed 42, last day as a change folder) and reuse it."""
    from b2b_pipeline.generate import generate_company

    accounts = SIZES[size]
    full = root.resolve() / f"{size}-{accounts}-seed{SEED}"  # absolute: the base drop links into it
    summary_file = full / "bench-summary.json"
    if not summary_file.exists():
        say(f"generating company {size} ({accounts:,} accounts) into {full}")
        started = time.perf_counter()
        summary = generate_company(full / "drop", seed=SEED, accounts=accounts, start=START, end=END, nightly_days=1)
        summary_file.write_text(
            json.dumps({"rows": summary.total_rows, "seconds": round(time.perf_counter() - started, 1)})
        )
    drop = full / "drop"
    day = END.isoformat()
    increment = [p for p in (drop / "crm" / day, drop / "billing" / day) if p.exists()]
    increment_rows = sum(_data_rows(f) for folder in increment for f in folder.iterdir())
    # the base drop: the same files, hard-linked, without the last day's folders
    base = full / "base"
    if base.exists() and any(p.is_symlink() for p in base.rglob("*")):
        shutil.rmtree(base)  # made by an older harness with symbolic links, which the loader refuses
    if not base.exists():
        for system in ("crm", "billing"):
            (base / system).mkdir(parents=True)
            for entry in (drop / system).iterdir():
                if entry.name != day:
                    link_tree(entry, base / system / entry.name)
    rows = json.loads(summary_file.read_text())["rows"]
    return Company(size, accounts, base, increment, rows, increment_rows)


def link_tree(source: Path, target: Path) -> None:
    """`target` as a copy of the file or folder `source` made of hard links (a copy where the two lie on
    different file systems): a drop's files lie inside the drop, as the loader requires of them
    (it refuses a symbolic link that leads out of the drop folder), at no cost in disk or time."""
    if source.is_dir():
        target.mkdir()
        for entry in source.iterdir():
            link_tree(entry, target / entry.name)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _data_rows(path: Path) -> int:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        lines = sum(1 for _ in f)
    return lines - (1 if ".csv" in path.name else 0)


class MemorySampler:
    """Samples the RSS of this process and its children every 50 ms; peak per labelled step."""

    def __init__(self) -> None:
        self.label = "setup"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _rss(self) -> int:
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child that just ended
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            rss = self._rss()
            label = self.label
            if rss > self.peaks.get(label, 0):
                self.peaks[label] = rss

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def step_of(task_id: str) -> str:
    if task_id.startswith("extract_"):
        return "load"
    if task_id.startswith("dbt."):
        return "dbt"
    return {"quality_gate": "gate", "publish": "publish", "summary": "summary"}.get(task_id, "other")


def dbt_part_of(task_id: str) -> str | None:
    """Which part of the dbt step a task is: the one `dbt build` (producer), the test task, or a
    model's task that reads its result from the producer; None outside the dbt task group."""
    if not task_id.startswith("dbt."):
        return None
    name = task_id.removeprefix("dbt.")
    if name == "dbt_producer_watcher":
        return "build"
    if name.endswith("_test"):
        return "tests"
    return "model tasks"


def run_measured_night(home: Path, dsn: str, night: Night, sampler: MemorySampler) -> dict[str, Any]:
    from b2b_pipeline.orchestration.local_airflow import run_night

    def on_task(task_id: str, state: str) -> None:
        if state == "running":
            sampler.label = step_of(task_id)

    started = time.perf_counter()
    outcome = run_night(home, dsn, night, on_task)
    wall = time.perf_counter() - started
    steps: dict[str, float] = {}
    dbt: dict[str, float] = {}
    for task_id, seconds in outcome.seconds.items():
        steps[step_of(task_id)] = steps.get(step_of(task_id), 0.0) + seconds
        part = dbt_part_of(task_id)
        if part is not None:
            dbt[part] = dbt.get(part, 0.0) + seconds
    return {
        "state": outcome.state,
        "wall_seconds": round(wall, 2),
        "tasks_seconds": round(sum(outcome.seconds.values()), 2),
        "steps_seconds": {k: round(v, 2) for k, v in sorted(steps.items())},
        "dbt_seconds": {k: round(v, 2) for k, v in sorted(dbt.items())},
        "gate_share": round(steps.get("gate", 0.0) / wall, 3) if wall else None,
        "tasks": len(outcome.seconds),
    }


def dag_parse_seconds(repeats: int = 5) -> float:
    """Median time to parse the DAG file, Airflow already imported (as the dag-processor does)."""
    from airflow.dag_processing.dagbag import DagBag

    from b2b_pipeline.config import dags_folder

    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        DagBag(dag_folder=str(dags_folder() / "b2b_sales_nightly.py"))
        timings.append(time.perf_counter() - started)
    return round(statistics.median(timings), 3)


def bench_size(company: Company, admin_dsn: str, home: Path, say: Say) -> dict[str, Any]:
    """Every measurement of one company size."""
    result: dict[str, Any] = {"size": company.size, "accounts": company.accounts, "rows": company.rows}
    say(f"[{company.size}] load against plain COPY")
    load = summarize(benchmark_load(admin_dsn, company.base))
    result["load"] = {k: v for k, v in load.items() if k != "files"}
    result["load_files"] = load["files"]
    say(f"[{company.size}] whole-drop load against plain COPY")
    result["load_drop"] = benchmark_drop(admin_dsn, company.base).as_dict()
    with scratch_database(admin_dsn) as dsn, MemorySampler() as sampler:
        drop = home / f"drop-{company.size}"
        if drop.exists():
            shutil.rmtree(drop)
        for system in ("crm", "billing"):
            (drop / system).mkdir(parents=True)
            for entry in (company.base / system).iterdir():
                link_tree(entry, drop / system / entry.name)
        say(f"[{company.size}] full night")
        result["full_night"] = run_measured_night(home, dsn, Night(END - timedelta(days=1), drop), sampler)
        # the same night again, as a warm-up: a night patches the core facts it carries over from the
        # star published the night before last, which exists from an install's third night on
        say(f"[{company.size}] second night (the same as-of date, no new files)")
        result["second_night"] = run_measured_night(home, dsn, Night(END - timedelta(days=1), drop), sampler)
        for folder in company.increment:
            link_tree(folder, drop / folder.parent.name / folder.name)
        say(f"[{company.size}] nightly increment ({company.increment_rows:,} rows)")
        result["increment"] = run_measured_night(home, dsn, Night(END, drop), sampler)
        result["increment"]["rows"] = company.increment_rows
        result["increment"]["share_of_rows"] = round(company.increment_rows / company.rows, 4)
        result["peak_rss_mb"] = {k: round(v / 2**20) for k, v in sorted(sampler.peaks.items())}
    full, inc = result["full_night"]["wall_seconds"], result["increment"]["wall_seconds"]
    result["increment_vs_full"] = round(inc / full, 3) if full else None
    return result


def run_bench(sizes: list[str], admin_dsn: str, home: Path, cache: Path, out: Path, say: Say) -> tuple[Path, str]:
    """Measure every size; write the JSON and Markdown reports; (json path, markdown)."""
    from b2b_pipeline.transform.manifest import ensure_manifest

    ensure_manifest(admin_dsn)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "sizes": [],
    }
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = out / f"bench-{stamp}.json"

    def write() -> str:
        json_path.write_text(json.dumps(report, indent=2))
        markdown = to_markdown(report)
        json_path.with_suffix(".md").write_text(markdown)
        return markdown

    for size in sizes:
        company = cached_company(cache, size, say)
        report["sizes"].append(bench_size(company, admin_dsn, home, say))
        write()  # after every size, so that a long L run that fails keeps what S and M measured
    # last: parsing imports Airflow, which must first be pointed at the bench's own home by a night
    report["dag_parse_seconds"] = dag_parse_seconds()
    return json_path, write()


def growth_lines(sizes: list[dict[str, Any]]) -> list[str]:
    """How nights scale with the company: full nights against rows, increments against changed rows."""
    if len(sizes) < 2:
        return []
    first = sizes[0]
    lines = [
        "",
        f"Growth against {first['size']} (full nights should follow the rows, increments the changed rows):",
        "",
        "| size | rows × | full night × | full night s per million rows | increment rows × | increment × |",
        "|---|---|---|---|---|---|",
    ]
    for s in sizes:
        full, inc = s["full_night"]["wall_seconds"], s["increment"]["wall_seconds"]
        lines.append(
            f"| {s['size']} | {s['rows'] / first['rows']:.1f} | {full / first['full_night']['wall_seconds']:.1f} "
            f"| {full / (s['rows'] / 1e6):.1f} | {s['increment']['rows'] / first['increment']['rows']:.1f} "
            f"| {inc / first['increment']['wall_seconds']:.1f} |"
        )
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# b2b bench, {report['started_at']}",
        "",
        f"{m['cpus']} cores, {m['memory_gb']} GB, Python {m['python']}; DAG parse "
        f"{report.get('dag_parse_seconds', '(not yet measured)')} s (median of 5).",
        "",
        "| size | accounts | rows | load / plain COPY per file (csv, jsonl, all) | whole drop (connections) "
        "| full night s | second night s | increment s (rows) | increment / full | gate share (full / increment) "
        "| peak RSS MB (step) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["sizes"]:
        load = s["load"]
        fmt = load["by_format"]
        ratios = ", ".join(str(fmt[k]["ratio"]) for k in sorted(fmt)) + f", {load['all']['ratio']}"
        peak_step, peak = max(s["peak_rss_mb"].items(), key=lambda kv: kv[1])
        drop = s["load_drop"]
        lines.append(
            f"| {s['size']} | {s['accounts']:,} | {s['rows']:,} | {ratios} | {drop['ratio']} ({drop['workers']}) "
            f"| {s['full_night']['wall_seconds']} | {s.get('second_night', {}).get('wall_seconds', '-')} "
            f"| {s['increment']['wall_seconds']} ({s['increment']['rows']:,}) | {s['increment_vs_full']} "
            f"| {s['full_night']['gate_share']} / {s['increment']['gate_share']} | {peak} ({peak_step}) |"
        )
    lines += growth_lines(report["sizes"])
    lines += ["", "Steps of each night (seconds of task time):", ""]
    for s in report["sizes"]:
        for night in (n for n in NIGHTS if n in s):
            steps = ", ".join(f"{k} {v}" for k, v in s[night]["steps_seconds"].items())
            parts = ", ".join(f"{k} {v}" for k, v in s[night].get("dbt_seconds", {}).items())
            if parts:
                steps += f"; dbt: {parts}"
            lines.append(f"- {s['size']} {night.replace('_', ' ')}: {steps} ({s[night]['tasks']} tasks)")
    return "\n".join(lines) + "\n"
