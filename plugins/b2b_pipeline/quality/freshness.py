"""`dbt source freshness` of the night's source systems, as checks of the quality gate.

The thresholds are the sources' own (`freshness:` in `dbt_project/models/staging/<source>/
_<source>__sources.yml`, e.g. warn after 36 h and error after 72 h without a new load). A table past
`warn_after` warns; past `error_after` it blocks the night, or only warns with
`B2B_SOURCE_FRESHNESS=warn` (`off` skips the check). A table that was never loaded (a file the drop does
not deliver) is skipped: freshness catches a source that stopped, not one that never started. Only the
tables the night reads are checked: the source systems configured for it (`B2B_CRM_SOURCE`,
`B2B_BILLING_SOURCE`) and, of the file drop, only the entities of the systems read from files.

dbt parses the project for the command. Its target folder is `B2B_HOME/dbt/freshness/<warehouse>/`, kept
from night to night, so that dbt parses only what changed since the last night on that warehouse (dbt's
partial parsing holds for one warehouse; a new warehouse or a changed project parses in full, 10 to 17 s
here). The first time, the folder starts from the state the manifest's `dbt parse` left in the project's
`target/`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from typing import Any

from b2b_pipeline.config import b2b_home, billing_source, crm_source, dbt_project_dir, source_freshness_mode
from b2b_pipeline.filedrop.spec import ALWAYS_FROM_FILES, ENTITIES
from b2b_pipeline.quality.result import CheckResult
from b2b_pipeline.transform.dbt_runner import ENV_DBNAME, ENV_HOST, ENV_PORT, dsn_to_env, run_dbt
from b2b_pipeline.transform.manifest import PARTIAL_PARSE

log = logging.getLogger(__name__)

CHECK_PREFIX = "raw.source_freshness"
EXPECTATION = "dbt source freshness"


def night_selectors(crm: str | None = None, billing: str | None = None) -> list[str]:
    """dbt selectors of the tables the night reads: each API source whole, the drop's entities of the
    systems read from files, and those read from the drop whatever the source (`ALWAYS_FROM_FILES`)."""
    systems = {"crm": crm or crm_source(), "billing": billing or billing_source()}
    from_files = {system for system, source in systems.items() if source == "files"}
    selectors = [f"source:{entity_source}" for entity_source in sorted(set(systems.values()) - {"files"})]
    selectors += [
        f"source:files.{entity.name}"
        for entity in ENTITIES
        if entity.system in from_files or entity.name in ALWAYS_FROM_FILES.get(entity.system, ())
    ]
    return selectors


def check_freshness(dsn: str, selectors: Sequence[str] | None = None, mode: str | None = None) -> list[CheckResult]:
    """Run `dbt source freshness` on the tables of `selectors` (default: the night's) and return one
    check per table that has a freshness threshold; [] when the mode is `off`."""
    mode = mode or source_freshness_mode()
    if mode == "off":
        return []
    chosen = list(selectors) if selectors is not None else night_selectors()
    target = b2b_home() / "dbt" / "freshness" / warehouse_key(dsn)
    target.mkdir(parents=True, exist_ok=True)
    saved = dbt_project_dir() / "target" / PARTIAL_PARSE
    if not (target / PARTIAL_PARSE).is_file() and saved.is_file():
        shutil.copy2(saved, target / PARTIAL_PARSE)
    result = run_dbt(
        ["source", "freshness", "--select", *chosen],
        dsn=dsn,
        vars={},
        target_path=target,
        log_path=target,
        raise_on_failure=False,
    )
    items = list(getattr(result.raw, "results", None) or [])
    if not items and not result.success:
        return [_not_run(chosen, mode)]
    checks = [_check(item, mode) for item in items]
    for check in checks:
        if check.status in ("warned", "blocked"):
            log.warning("source freshness: %s %s: %s", check.table, check.status, check.summary)
    return sorted(checks, key=lambda c: c.name)


def warehouse_key(dsn: str) -> str:
    """A folder name of the warehouse (host, port, database; not the credentials): dbt's partial parsing
    holds for one warehouse, and two gates on two warehouses must not share a target folder."""
    env = dsn_to_env(dsn)
    where = "|".join(env.get(key, "") for key in (ENV_HOST, ENV_PORT, ENV_DBNAME))
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def _status_of(item: Any) -> str:
    status = getattr(item, "status", "")
    return str(getattr(status, "value", status)).lower()


def _hours(count: int, period: str) -> float:
    return count * {"minute": 1 / 60, "hour": 1.0, "day": 24.0}[period]


def _threshold(freshness: Any, key: str) -> float | None:
    limit = getattr(freshness, key, None)
    count, period = getattr(limit, "count", None), getattr(limit, "period", None)
    if count is None or period is None:
        return None
    return _hours(count, str(getattr(period, "value", period)))


def _check(item: Any, mode: str) -> CheckResult:
    node = item.node
    freshness = getattr(node, "freshness", None)
    warn_h, error_h = _threshold(freshness, "warn_after"), _threshold(freshness, "error_after")
    limits = ", ".join(
        f"{word} after {hours:g} h" for word, hours in (("warn", warn_h), ("error", error_h)) if hours is not None
    )
    status = _status_of(item)
    common = {
        "name": f"{CHECK_PREFIX}.{node.source_name}.{node.name}",
        "layer": "raw",
        "table": f"{node.schema}.{node.identifier}",
        "expectation": EXPECTATION,
        "description": f"The source table got a new load recently enough ({limits} without one).",
    }
    if status == "runtime error":
        return CheckResult(
            **common,
            severity=mode,
            success=False,
            status="blocked" if mode == "block" else "warned",
            summary=f"freshness could not be checked: {getattr(item, 'message', '') or 'an error'}",
            error=str(getattr(item, "message", "") or ""),
        )
    if item.max_loaded_at.year == 1:  # dbt's answer for a table with no load at all (max() is NULL)
        return CheckResult(
            **common, severity=mode, success=True, status="skipped", summary="never loaded: nothing to be stale yet"
        )
    age_h = float(item.age) / 3600
    loaded = item.max_loaded_at.strftime("%Y-%m-%d %H:%M UTC")
    summary = f"last loaded {loaded}, {age_h:,.1f} h ago ({limits})"
    if status == "pass":
        return CheckResult(
            **common, severity=mode, success=True, status="passed", observed=round(age_h, 1), summary=summary
        )
    if status == "warn":
        return CheckResult(
            **common, severity="warn", success=False, status="warned", observed=round(age_h, 1), summary=summary
        )
    return CheckResult(  # error: past error_after
        **common,
        severity=mode,
        success=False,
        status="blocked" if mode == "block" else "warned",
        observed=round(age_h, 1),
        summary=summary,
    )


def _not_run(selectors: Sequence[str], mode: str) -> CheckResult:
    return CheckResult(
        name=f"{CHECK_PREFIX}.not_run",
        layer="raw",
        table=" ".join(selectors),
        severity=mode,
        success=False,
        status="blocked" if mode == "block" else "warned",
        expectation=EXPECTATION,
        description="dbt source freshness of the night's source tables.",
        summary="dbt source freshness did not run (see the task log)",
        error="dbt source freshness did not run",
    )
