"""The dbt manifest the DAG's dbt task group is rendered from, compiled when the project changed."""

from __future__ import annotations

import logging
from pathlib import Path

from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.transform.dbt_runner import run_dbt

log = logging.getLogger(__name__)

PROJECT_FOLDERS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")


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
    """Compile the manifest with `dbt parse` when it is stale (never at DAG-parse time)."""
    if manifest_is_stale():
        log.info("parsing the dbt project into %s", dbt_manifest_path())
        run_dbt(["parse"], dsn=dsn, vars={})
    return dbt_manifest_path()
