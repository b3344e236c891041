"""The dbt manifest the DAG's dbt task group is rendered from, compiled when the project changed."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.transform.dbt_runner import run_dbt

log = logging.getLogger(__name__)

PROJECT_FOLDERS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")
LOCK_FILE = ".parse.lock"
PARSE_FOLDER_PREFIX = ".parse-"
PARTIAL_PARSE = "partial_parse.msgpack"


def dbt_manifest_path() -> Path:
    return dbt_project_dir() / "target" / "manifest.json"


def manifest_is_stale() -> bool:
    """True when the manifest is missing or older than a file of the dbt project."""
    manifest = dbt_manifest_path()
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    project = dbt_project_dir()
    for folder in PROJECT_FOLDERS:
        for path in (project / folder).rglob("*"):
            if path.is_file() and path.stat().st_mtime > built:
                return True
    return (project / "dbt_project.yml").stat().st_mtime > built


def ensure_manifest(dsn: str) -> Path:
    """Compile the manifest with `dbt parse` when it is stale (never at DAG-parse time).

    Processes that share the project (Airflow workers, `b2b` commands, test workers) parse one at a
    time (a lock file in `target/`), and each file dbt writes replaces the old one whole, the manifest
    last: a reader sees the old manifest or the new one, never half of one."""
    manifest = dbt_manifest_path()
    target = manifest.parent
    target.mkdir(parents=True, exist_ok=True)
    with open(target / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process's dbt parse of %s", target.parent)
            fcntl.flock(lock, fcntl.LOCK_EX)
        for leftover in target.glob(PARSE_FOLDER_PREFIX + "*"):  # a parse killed midway (under the lock: none runs)
            shutil.rmtree(leftover, ignore_errors=True)
        if manifest_is_stale():  # again, under the lock: another process may have parsed meanwhile
            log.info("parsing the dbt project into %s", manifest)
            with tempfile.TemporaryDirectory(dir=target, prefix=PARSE_FOLDER_PREFIX) as folder:
                parsed = Path(folder)
                if (target / PARTIAL_PARSE).is_file():
                    shutil.copy2(target / PARTIAL_PARSE, parsed / PARTIAL_PARSE)
                run_dbt(["parse"], dsn=dsn, vars={}, target_path=parsed, log_path=parsed)
                written = sorted(path.name for path in parsed.iterdir() if path.is_file() and path.suffix != ".log")
                for name in [n for n in written if n != manifest.name] + [manifest.name]:
                    os.replace(parsed / name, target / name)
    return manifest
