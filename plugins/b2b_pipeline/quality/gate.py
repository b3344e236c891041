"""The quality gate: run the expectation suites on the night's layers and decide whether it may publish.

`run_gate()` validates the raw layer (`raw_files`), `staging` and the candidate core and marts
(`core__candidate`, `marts__candidate`) with the checks of `expectations/` (run by
`gx_runner`), and the night's source tables with `dbt source freshness` (`freshness`), and returns a
`GateResult`. `enforce_gate()` is the nightly step (the DAG's
`quality_gate` task): it runs the gate, writes `gate.json` and `quality.html` under
`B2B_HOME/reports/<as-of date>/`, records the run in `raw_files.gate_runs` (`state`) and raises
`GateBlocked` when a blocking check failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from b2b_pipeline.config import (
    REPORTING_SETTING_NAMES,
    b2b_home,
    gate_amount_limits,
    pipelines_text,
    reporting_settings,
)
from b2b_pipeline.night import Night, cutoff
from b2b_pipeline.publish import SETTINGS_MART, candidate
from b2b_pipeline.quality.freshness import check_freshness
from b2b_pipeline.quality.gx_runner import validate
from b2b_pipeline.quality.report import data_docs_dir, write_reports
from b2b_pipeline.quality.result import CheckResult, GateBlocked, GateResult, errored, skipped
from b2b_pipeline.quality.state import batch_scope, ensure_gate_state, record_gate_run
from b2b_pipeline.quality.suites import LAYERS, Check, load_suites, render_text
from b2b_pipeline.warehouse import connect

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw_files"
# the schema each layer validates, and the published schema it is compared with ({published})
VALIDATED_SCHEMAS: dict[str, str] = {
    "raw": RAW_SCHEMA,
    "staging": "staging",
    "core": candidate("core"),
    "marts": candidate("marts"),
}
PUBLISHED_SCHEMAS: dict[str, str] = {"raw": RAW_SCHEMA, "staging": "staging", "core": "core", "marts": "marts"}


def shown_settings(settings: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The reporting settings of a night (`settings`: the ones it fixed, `Night.settings`; else the
    deployment's now), as text for gate.json, the quality page and the checks' placeholders:
    `sales_pipelines` as marts.reporting_settings has it."""
    found = reporting_settings() if settings is None else settings
    return {
        key: pipelines_text(found[key]) if isinstance(found[key], list | tuple) else str(found[key])
        for key in REPORTING_SETTING_NAMES
    }


def _settings_change(dsn: str, settings: Mapping[str, str]) -> str | None:
    """How tonight's settings differ from those of the published marts (marts.reporting_settings), or
    None when they are the same or nothing says (no published night, or one published before the table)."""
    published = PUBLISHED_SCHEMAS["marts"]
    with connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        if cur.execute("select to_regclass(%s) as t", (f"{published}.{SETTINGS_MART}",)).fetchone()["t"] is None:
            return None
        row = cur.execute(
            sql.SQL("select {} from {} limit 1").format(
                sql.SQL(", ").join(map(sql.Identifier, settings)), sql.Identifier(published, SETTINGS_MART)
            )
        ).fetchone()
    if row is None:
        return None
    changed = [f"{key} {row[key]} -> {value}" for key, value in settings.items() if row[key] != value]
    return "the settings changed since the published night: " + "; ".join(changed) if changed else None


def run_gate(
    dsn: str,
    night: Night,
    home: Path | None = None,
    *,
    expectations: Path | None = None,
    schemas: Mapping[str, str] | None = None,
    layers: Sequence[str] = LAYERS,
    source_freshness: bool = False,
) -> GateResult:
    """Validate the night's layers with the suites of `expectations/` and return the verdict.

    `schemas` overrides the schema a layer validates (default: `raw_files`, `staging`,
    `core__candidate`, `marts__candidate`). With `home`, GX Data Docs of the run are rendered to
    `home/reports/<as-of>/data_docs` (best effort). Raises only when the suites cannot be read or
    the warehouse cannot be reached; a check that cannot run (a missing table, an SQL error)
    fails, and blocks when its severity is `block`. With `source_freshness` (and the raw layer), the
    night's source tables are checked by `dbt source freshness` too (`freshness.check_freshness`).
    """
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    suites = load_suites(expectations, layers)
    validated = {**VALIDATED_SCHEMAS, **(schemas or {})}
    with connect(dsn, autocommit=True) as conn:
        ensure_gate_state(conn)
        since, through = batch_scope(conn)
        catalog = _catalog(conn, {*validated.values(), *PUBLISHED_SCHEMAS.values()})

    checks = [check for suite in suites for check in suite.checks]
    settings = shown_settings(night.settings)
    settings_change = _settings_change(dsn, settings) if any(c.unless_settings_changed for c in checks) else None
    values_by_layer = {
        layer: _placeholder_values(night.as_of, since, through, validated, layer, settings) for layer in layers
    }
    results: dict[str, CheckResult] = {}
    groups: dict[tuple[str, str], list[Check]] = {}
    for check in checks:
        schema = validated[check.layer]
        values = values_by_layer[check.layer]
        if check.only_if_exists:
            needed = render_text(check.only_if_exists, values, check.table)
            if tuple(needed.split(".", 1)) not in catalog:
                results[check.name] = skipped(check, schema, f"{needed} does not exist")
                continue
        if check.unless_settings_changed and settings_change is not None:
            results[check.name] = skipped(check, schema, settings_change)
            continue
        if (schema, check.table) not in catalog:
            results[check.name] = errored(check, schema, f"table {schema}.{check.table} does not exist")
            continue
        groups.setdefault((check.layer, check.table), []).append(check)

    docs = data_docs_dir(home, night.as_of) if home is not None else None
    results.update(validate(dsn, groups, validated, values_by_layer, catalog, docs))
    ordered = [results[c.name] for c in checks]
    if source_freshness and "raw" in layers:
        ordered = check_freshness(dsn) + ordered
    duration = time.monotonic() - clock
    result = GateResult(
        as_of=night.as_of,
        passed=not any(c.blocking for c in ordered),
        checks=ordered,
        started_at=started_at,
        duration_seconds=duration,
        schemas={layer: validated[layer] for layer in layers},
        since_batch_id=since,
        through_batch_id=through,
        data_docs=str(docs / "index.html") if docs is not None and (docs / "index.html").exists() else None,
        settings=settings,
    )
    counts = result.counts()
    log.info(
        "quality gate for %s: %s checks, %s blocked, %s warned, %s skipped in %.1f s (batches %s..%s)",
        night.as_of,
        counts["checks"],
        counts["blocked"],
        counts["warned"],
        counts["skipped"],
        duration,
        since + 1,
        through,
    )
    return result


def enforce_gate(dsn: str, night: Night) -> dict[str, Any]:
    """The nightly step: run the gate, write the reports, record the run; raise GateBlocked when blocked."""
    home = b2b_home()
    result = run_gate(dsn, night, home, source_freshness=True)
    paths = write_reports(result, home)
    record_gate_run(dsn, result, paths.html)
    for check in result.warnings:
        log.warning("quality gate warning: %s on %s: %s", check.name, check.table, check.summary)
    if not result.passed:
        for check in result.blocking:
            log.error("quality gate blocks: %s on %s: %s", check.name, check.table, check.summary)
        raise GateBlocked(result, paths.html)
    log.info("quality gate passed for %s; report %s", night.as_of, paths.html)
    return {
        "passed": True,
        "as_of_date": night.as_of.isoformat(),
        "checks": len(result.checks),
        "warnings": [f"{c.name}: {c.summary}" for c in result.warnings],
        "report": str(paths.html),
        "gate_json": str(paths.json),
    }


def _catalog(conn: Any, schemas: Iterable[str]) -> dict[tuple[str, str], set[str]]:
    rows = conn.execute(
        "select table_schema, table_name, column_name from information_schema.columns where table_schema = any(%s)",
        (sorted(set(schemas)),),
    ).fetchall()
    catalog: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        catalog.setdefault((schema, table), set()).add(column)
    return catalog


def _placeholder_values(
    as_of: date,
    since: int,
    through: int,
    validated: Mapping[str, str],
    layer: str,
    settings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    max_amount, outlier_factor = gate_amount_limits()
    settings = shown_settings() if settings is None else settings
    return {
        "as_of_date": f"date '{as_of.isoformat()}'",
        "as_of_month": f"date '{as_of.replace(day=1).isoformat()}'",
        "cutoff": f"(timestamptz '{cutoff(as_of, settings['reporting_timezone']).isoformat()}')",
        "since_batch_id": str(since),
        "through_batch_id": str(through),
        "schema": validated[layer],
        "published": PUBLISHED_SCHEMAS[layer],
        "max_amount": _numeric_literal(max_amount),
        "outlier_factor": _numeric_literal(outlier_factor),
        # text literals; a brace doubled, as GX formats the query after us
        **{
            key: "'" + value.replace("'", "''").replace("{", "{{").replace("}", "}}") + "'"
            for key, value in settings.items()
        },
    }


def _numeric_literal(value: Decimal) -> str:
    """An exact SQL `numeric` literal (plain digits, never a float): Decimal('1E+12') -> numeric '1000000000000'."""
    return f"(numeric '{value:f}')"
