"""Where the project's parts are on disk, and the dbt manifest the DAG is rendered from."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from b2b_pipeline.transform.dbt_runner import dbt_project_dir

log = logging.getLogger(__name__)

PROJECT_DIR_ENV = "B2B_PROJECT_DIR"


def project_root() -> Path:
    """The repository (or image) root holding dags/, dbt_project/ and expectations/."""
    override = os.environ.get(PROJECT_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[3]


def dags_folder() -> Path:
    return project_root() / "dags"


def dbt_project_path() -> Path:
    return dbt_project_dir()


def dbt_manifest_path() -> Path:
    return dbt_project_dir() / "target" / "manifest.json"


def manifest_is_stale() -> bool:
    """True when the manifest is missing or older than a file of the dbt project."""
    manifest = dbt_manifest_path()
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    project = dbt_project_dir()
    for folder in ("models", "macros", "seeds", "tests", "snapshots", "analyses"):
        for path in (project / folder).rglob("*"):
            if path.is_file() and path.stat().st_mtime > built:
                return True
    return (project / "dbt_project.yml").stat().st_mtime > built


def ensure_manifest(dsn: str) -> Path:
    """Compile the manifest with `dbt parse` when it is stale (never at DAG-parse time)."""
    from b2b_pipeline.transform.dbt_runner import run_dbt

    if manifest_is_stale():
        log.info("parsing the dbt project into %s", dbt_manifest_path())
        run_dbt(["parse"], dsn=dsn, vars={})
    return dbt_manifest_path()
