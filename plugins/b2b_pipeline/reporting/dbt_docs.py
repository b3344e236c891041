"""The data dictionary: `dbt docs generate --static` into `B2B_HOME/reports/dbt_docs/`.

dbt writes into a scratch target folder under `B2B_HOME`; only the pages and the two JSON
documents are moved into `reports/dbt_docs/` (one `os.replace` each), so the folder the report and
the Airflow plugin serve never holds compiled SQL or a half-written page. `static_index.html` is
the self-contained page (manifest and catalog inlined); `index.html` needs the JSON next to it.

The catalog is read from the published schemas (`core`, `marts`). `docs_coverage()` lists the
published models and columns that have no description.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from b2b_pipeline.config import reporting_settings, reports_dir
from b2b_pipeline.files import READABLE, open_folder
from b2b_pipeline.reporting.report_data import latest_published_as_of

log = logging.getLogger(__name__)

DOCS_DIR = "dbt_docs"
STATIC_PAGE = "static_index.html"
DOCS_FILES = ("static_index.html", "index.html", "manifest.json", "catalog.json")
COVERAGE_FILE = "docs_coverage.json"
PUBLISHED_SCHEMAS = ("core", "marts")


def dbt_docs_dir(home: Path) -> Path:
    """Where the dbt docs are built: `<B2B_HOME>/reports/dbt_docs`."""
    return reports_dir(home) / DOCS_DIR


def dbt_docs_page(home: Path) -> Path:
    """The dbt docs as one self-contained page (what the report links to)."""
    return dbt_docs_dir(home) / STATIC_PAGE


@dataclass
class DocsCoverage:
    """Published models and columns without a description."""

    models: list[str] = field(default_factory=list)  # model names
    columns: list[str] = field(default_factory=list)  # "model.column"
    checked_models: int = 0
    checked_columns: int = 0

    @property
    def complete(self) -> bool:
        return not self.models and not self.columns

    def as_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "checked_models": self.checked_models,
            "checked_columns": self.checked_columns,
            "models_without_description": self.models,
            "columns_without_description": self.columns,
        }


def docs_coverage(
    manifest: dict[str, Any], catalog: dict[str, Any] | None = None, schemas: Iterable[str] = PUBLISHED_SCHEMAS
) -> DocsCoverage:
    """The published models (schema in `schemas`) and their columns without a description.

    A model's columns are those of the catalog (the built table) when it has the model, else those
    its YAML declares; a column the YAML does not declare has no description.
    """
    wanted = set(schemas)
    catalog_nodes = (catalog or {}).get("nodes", {})
    coverage = DocsCoverage()
    for uid, node in sorted(manifest.get("nodes", {}).items()):
        if node.get("resource_type") != "model" or node.get("schema") not in wanted:
            continue
        name = node.get("name", uid)
        coverage.checked_models += 1
        if not (node.get("description") or "").strip():
            coverage.models.append(name)
        declared = {k.lower(): v for k, v in (node.get("columns") or {}).items()}
        built = catalog_nodes.get(uid, {}).get("columns")
        names = [c.lower() for c in built] if built else list(declared)
        for column in sorted(names):
            coverage.checked_columns += 1
            if not ((declared.get(column) or {}).get("description") or "").strip():
                coverage.columns.append(f"{name}.{column}")
    return coverage


def build_dbt_docs(dsn: str, home: Path, *, as_of: date | None = None) -> Path:
    """Run `dbt docs generate --static` against the published schemas; the path of `static_index.html`.

    `as_of` fills the `as_of_date` var the models need to compile (default: the published night,
    else today). Also writes `docs_coverage.json` (undocumented published models and columns) and
    logs a warning when there are any.
    """
    from b2b_pipeline.transform.dbt_runner import run_dbt

    home = Path(home)
    out = dbt_docs_dir(home)
    out.mkdir(parents=True, exist_ok=True)
    open_folder(out)  # readable by all whatever the umask, as the nights' folders
    if as_of is None:
        try:
            as_of = latest_published_as_of(dsn)
        except Exception as exc:  # no warehouse schema yet: docs still generate
            log.info("no published as-of date (%s); using today", exc)
        as_of = as_of or date.today()
    scratch = Path(tempfile.mkdtemp(prefix=".dbt_docs_build.", dir=home))
    try:
        run_dbt(
            ["docs", "generate", "--static"],
            dsn=dsn,
            vars={
                "as_of_date": as_of.isoformat(),
                "core_schema": "core",
                "marts_schema": "marts",
                **reporting_settings(),
            },
            target_path=scratch / "target",
            log_path=scratch / "logs",
        )
        target = scratch / "target"
        missing = [name for name in DOCS_FILES if not (target / name).is_file()]
        if missing:
            raise RuntimeError(f"dbt docs generate wrote no {', '.join(missing)} in {target}")
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        catalog = json.loads((target / "catalog.json").read_text(encoding="utf-8"))
        coverage = docs_coverage(manifest, catalog)
        (target / COVERAGE_FILE).write_text(json.dumps(coverage.as_dict(), indent=2) + "\n", encoding="utf-8")
        # JSON first, the pages last: a reader of a page finds its data in place
        for name in (*reversed(DOCS_FILES), COVERAGE_FILE):
            os.chmod(target / name, READABLE)
            os.replace(target / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not coverage.complete:
        log.warning(
            "published dbt models without a description: %s; columns: %s",
            ", ".join(coverage.models) or "none",
            ", ".join(coverage.columns) or "none",
        )
    return out / STATIC_PAGE
