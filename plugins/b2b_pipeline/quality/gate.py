"""Run the expectation suites against the warehouse and decide whether the night may publish.

`run_gate()` builds an ephemeral Great Expectations context with one SQL data source on
the warehouse, one table asset per checked table (schema per layer: `raw_files`,
`staging`, `core__candidate`, `marts__candidate`) and runs every check by SQL pushdown:
GX computes counts and fetches at most a handful of example rows, never a table. Per table,
each query check's SQL runs once, and the column checks share one counting pass; examples
are fetched only for the column checks that found unexpected rows (see `_run_table`).

`enforce_gate()` is the nightly step (the DAG's `quality_gate` task): it runs the gate,
writes `gate.json` and `quality.html` under `B2B_HOME/reports/<as-of date>/`, records the
run in `raw_files.gate_runs` and raises `GateBlocked` when a blocking check failed.

Tonight's load batches (for the raw checks) are those after the last batch a passed gate
run covered: `since_batch_id < batch_id <= through_batch_id` (see docs/quality-gate.md).
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from b2b_pipeline.config import gate_amount_limits
from b2b_pipeline.nightly import Night
from b2b_pipeline.publish import candidate
from b2b_pipeline.quality.report import data_docs_dir, write_reports
from b2b_pipeline.quality.suites import LAYERS, Check, build_kwargs, load_suites, render_text
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
MAX_EXAMPLES = 5

GATE_RUNS_DDL = """
create table if not exists raw_files.gate_runs (
    run_id bigint generated always as identity primary key,
    as_of_date date not null,
    started_at timestamptz not null,
    finished_at timestamptz not null default clock_timestamp(),
    passed boolean not null,
    accepted boolean not null default false,
    since_batch_id bigint not null,
    through_batch_id bigint not null,
    blocking integer not null default 0,
    warnings integer not null default 0,
    report text,
    note text
)
"""


@dataclass
class CheckResult:
    """The outcome of one check.

    `success` says whether the expectation held (a check skipped because the table it compares
    with does not exist holds). `status` is what it means for the night: `passed`, `warned`
    (a warn check failed, or a block check held only thanks to its tolerance), `blocked` or
    `skipped`.
    """

    name: str
    layer: str
    table: str  # schema.table
    severity: str
    success: bool
    status: str
    expectation: str
    description: str
    observed: int | float | None = None  # unexpected rows (or GX's observed value)
    element_count: int | None = None  # rows examined, for column checks
    unexpected_fraction: float | None = None  # share of the rows examined that broke the check
    tolerance: float | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    error: str | None = None

    @property
    def blocking(self) -> bool:
        return self.status == "blocked"

    @property
    def warning(self) -> bool:
        return self.status == "warned"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateResult:
    """The gate's verdict for a night: passed unless a blocking check failed."""

    as_of: date
    passed: bool
    checks: list[CheckResult]
    started_at: datetime
    duration_seconds: float
    schemas: dict[str, str]
    since_batch_id: int
    through_batch_id: int
    data_docs: str | None = None

    @property
    def blocking(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.warning]

    def counts(self) -> dict[str, int]:
        out = {"checks": len(self.checks), "passed": 0, "warned": 0, "blocked": 0, "skipped": 0}
        for check in self.checks:
            out[check.status] = out.get(check.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of_date": self.as_of.isoformat(),
            "passed": self.passed,
            "started_at": self.started_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 3),
            "schemas": dict(self.schemas),
            "batches": {"since_batch_id": self.since_batch_id, "through_batch_id": self.through_batch_id},
            "counts": self.counts(),
            "blocking": [c.name for c in self.blocking],
            "warnings": [c.name for c in self.warnings],
            "data_docs": self.data_docs,
            "checks": [c.to_dict() for c in self.checks],
        }


class GateBlocked(RuntimeError):
    """The quality gate blocked the night: the published marts stay as they were."""

    def __init__(self, result: GateResult, report: Path | None = None):
        self.result = result
        self.report = report
        lines = [
            f"quality gate blocked the night of {result.as_of.isoformat()}: "
            f"{len(result.blocking)} blocking check(s) failed; the published marts stay as they were"
        ]
        for check in result.blocking:
            lines.append(f"  - {check.name} on {check.table}: {check.summary}")
            for example in check.examples[:MAX_EXAMPLES]:
                lines.append(f"      e.g. {_one_line(example)}")
        if report is not None:
            lines.append(f"report: {report}")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------- state


def ensure_gate_state(conn: Any) -> None:
    """Create the raw layer's bookkeeping (if no load ever ran) and `raw_files.gate_runs`."""
    from b2b_pipeline.filedrop.schema import ensure_raw_schema

    ensure_raw_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('raw_files.gate_runs ddl'))")
        conn.execute(GATE_RUNS_DDL)


def batch_scope(conn: Any) -> tuple[int, int]:
    """Tonight's batches as (since_batch_id, through_batch_id]: after the last batch a passed run covered."""
    row = conn.execute(
        "select (select coalesce(max(through_batch_id), 0) from raw_files.gate_runs where passed), "
        "(select coalesce(max(batch_id), 0) from raw_files.load_batches)"
    ).fetchone()
    since, through = int(row[0]), int(row[1])
    return since, max(through, since)


def record_gate_run(dsn: str, result: GateResult, report: Path | None = None) -> None:
    """Remember the run; a passed run moves the start of the next night's batches past its own."""
    with connect(dsn, autocommit=True) as conn:
        ensure_gate_state(conn)
        conn.execute(
            "insert into raw_files.gate_runs (as_of_date, started_at, passed, since_batch_id, through_batch_id, "
            "blocking, warnings, report) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                result.as_of,
                result.started_at,
                result.passed,
                result.since_batch_id,
                result.through_batch_id,
                len(result.blocking),
                len(result.warnings),
                str(report) if report else None,
            ),
        )


def accept_raw_batches(dsn: str, as_of: date, note: str) -> tuple[int, int]:
    """Accept every load batch so far as checked (an operator's decision, with a note saying why).

    The raw checks of the next gate run then only see batches loaded after this call: the way
    out when a blocked night's quarantine or refusals were looked at and are to be lived with.
    Returns the accepted range (since_batch_id, through_batch_id].
    """
    if not note.strip():
        raise ValueError("say why the batches are accepted (note)")
    with connect(dsn, autocommit=True) as conn:
        ensure_gate_state(conn)
        since, through = batch_scope(conn)
        conn.execute(
            "insert into raw_files.gate_runs (as_of_date, started_at, passed, accepted, since_batch_id, "
            "through_batch_id, note) values (%s, clock_timestamp(), true, true, %s, %s, %s)",
            (as_of, since, through, note),
        )
    log.warning("load batches %s..%s accepted by an operator: %s", since + 1, through, note)
    return since, through


# --------------------------------------------------------------------------------------- running


def run_gate(
    dsn: str,
    night: Night,
    home: Path | None = None,
    *,
    expectations: Path | None = None,
    schemas: Mapping[str, str] | None = None,
    layers: Sequence[str] = LAYERS,
) -> GateResult:
    """Validate the night's layers with the suites of `expectations/` and return the verdict.

    `schemas` overrides the schema a layer validates (default: `raw_files`, `staging`,
    `core__candidate`, `marts__candidate`). With `home`, GX Data Docs of the run are rendered to
    `home/reports/<as-of>/data_docs` (best effort). Raises only when the suites cannot be read or
    the warehouse cannot be reached; a check that cannot run (a missing table, an SQL error)
    fails, and blocks when its severity is `block`.
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
    values_by_layer = {layer: _placeholder_values(night.as_of, since, through, validated, layer) for layer in layers}
    results: dict[str, CheckResult] = {}
    groups: dict[tuple[str, str], list[Check]] = {}
    for check in checks:
        schema = validated[check.layer]
        values = values_by_layer[check.layer]
        if check.only_if_exists:
            needed = render_text(check.only_if_exists, values, check.table)
            if tuple(needed.split(".", 1)) not in catalog:
                results[check.name] = _skipped(check, schema, f"{needed} does not exist")
                continue
        if (schema, check.table) not in catalog:
            results[check.name] = _errored(check, schema, f"table {schema}.{check.table} does not exist")
            continue
        groups.setdefault((check.layer, check.table), []).append(check)

    docs = data_docs_dir(home, night.as_of) if home is not None else None
    results.update(_validate(dsn, groups, validated, values_by_layer, catalog, docs))
    ordered = [results[c.name] for c in checks]
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
    from b2b_pipeline.config import b2b_home

    home = b2b_home()
    result = run_gate(dsn, night, home)
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


# --------------------------------------------------------------------------------------- internals


def sqlalchemy_url(dsn: str) -> str:
    """The warehouse URL for SQLAlchemy with psycopg 3 (`postgresql+psycopg://`), unix sockets included."""
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


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
    as_of: date, since: int, through: int, validated: Mapping[str, str], layer: str
) -> dict[str, str]:
    cutoff = as_of + timedelta(days=1)
    max_amount, outlier_factor = gate_amount_limits()
    return {
        "as_of_date": f"date '{as_of.isoformat()}'",
        "as_of_month": f"date '{as_of.replace(day=1).isoformat()}'",
        "cutoff": f"(cast(date '{cutoff.isoformat()}' as timestamp) at time zone 'UTC')",
        "since_batch_id": str(since),
        "through_batch_id": str(through),
        "schema": validated[layer],
        "published": PUBLISHED_SCHEMAS[layer],
        "max_amount": _numeric_literal(max_amount),
        "outlier_factor": _numeric_literal(outlier_factor),
    }


def _numeric_literal(value: Decimal) -> str:
    """An exact SQL `numeric` literal (plain digits, never a float): Decimal('1E+12') -> numeric '1000000000000'."""
    return f"(numeric '{value:f}')"


def _validate(
    dsn: str,
    groups: Mapping[tuple[str, str], list[Check]],
    validated: Mapping[str, str],
    values_by_layer: Mapping[str, Mapping[str, str]],
    catalog: Mapping[tuple[str, str], set[str]],
    docs: Path | None,
) -> dict[str, CheckResult]:
    """Run the grouped checks with GX: one table asset per table, its checks run by `_run_table`."""
    if not groups:
        return {}
    gx_log = logging.getLogger("great_expectations")
    gx_level = gx_log.level
    gx_log.setLevel(max(gx_level, logging.WARNING))  # GX's info lines (config dumps) are noise in task logs
    try:
        return _validate_with_gx(dsn, groups, validated, values_by_layer, catalog, docs)
    finally:
        gx_log.setLevel(gx_level)


def _validate_with_gx(
    dsn: str,
    groups: Mapping[tuple[str, str], list[Check]],
    validated: Mapping[str, str],
    values_by_layer: Mapping[str, Mapping[str, str]],
    catalog: Mapping[tuple[str, str], set[str]],
    docs: Path | None,
) -> dict[str, CheckResult]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    try:
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # cosmetic only
        log.debug("could not switch GX progress bars off", exc_info=True)
    with warnings.catch_warnings():
        # "a more specific PostgresDatasource may be more appropriate": it rejects unix-socket URLs
        warnings.simplefilter("ignore")
        source = context.data_sources.add_sql(
            name="warehouse",
            connection_string=sqlalchemy_url(dsn),
            kwargs={"connect_args": {"options": "-c timezone=UTC"}},
        )
    results: dict[str, CheckResult] = {}
    try:
        for (layer, table), checks in groups.items():
            schema = validated[layer]
            try:
                with warnings.catch_warnings():
                    # schema_name is deprecated in favour of one schema per data source; one source
                    # for all layers keeps a single connection pool
                    warnings.simplefilter("ignore", DeprecationWarning)
                    asset = source.add_table_asset(name=f"{schema}.{table}", table_name=table, schema_name=schema)
                batch_definition = asset.add_batch_definition_whole_table("whole_table")
            except Exception as exc:
                log.warning("quality gate: cannot read %s.%s: %s", schema, table, exc)
                results.update({c.name: _errored(c, schema, _short(exc)) for c in checks})
                continue
            columns = catalog.get((schema, table), set())
            results.update(
                _run_table(context, batch_definition, schema, table, checks, columns, values_by_layer[layer])
            )
        if docs is not None:
            _build_data_docs(context, docs)
    finally:
        try:
            source.get_execution_engine().close()
        except Exception:  # closing is best effort
            log.debug("could not close the GX engine", exc_info=True)
    return results


def _run_table(
    context: Any,
    batch_definition: Any,
    schema: str,
    table: str,
    checks: Sequence[Check],
    columns: set[str],
    values: Mapping[str, str],
) -> dict[str, CheckResult]:
    """All checks of one table, in as few scans as GX allows.

    - Query checks: one validation (COMPLETE: their rows are the examples), each query run once
      (`_one_pass_rows_expectation`).
    - Column checks: one validation that only counts (GX bundles the counts of all of them into
      one aggregate query; asking for no example skips GX's two example queries per check, each a
      full scan when nothing is unexpected). The checks that held without a single unexpected row
      are done: their result is the same as with examples (there are none). The others, and any
      that could not run, run again exactly as before, per set of example columns (SUMMARY, at most
      MAX_EXAMPLES unexpected rows with those columns), and that run is their result.
    """
    results: dict[str, CheckResult] = {}
    queries = [c for c in checks if c.is_query]
    if queries:
        results.update(_run_one(context, batch_definition, schema, table, ("rows", ()), queries, values))
    counted = [c for c in checks if not c.is_query]
    if not counted:
        return results
    first = _run_one(context, batch_definition, schema, table, ("counts", ()), counted, values)
    again: dict[tuple[str, tuple[str, ...]], list[Check]] = {}
    for check in counted:
        outcome = first[check.name]
        if outcome.error is None and outcome.success and outcome.observed == 0:
            results[check.name] = outcome
        else:
            key = ("columns", tuple(c for c in check.example_columns if c in columns))
            again.setdefault(key, []).append(check)
    for key, subset in again.items():
        results.update(_run_one(context, batch_definition, schema, table, key, subset, values))
    return results


def _result_format(kind: str, index_columns: Sequence[str]) -> dict[str, Any]:
    """What GX is asked to return: query checks their rows; column checks counts only (`counts`,
    no example: GX then runs no example query) or counts with examples (`columns`)."""
    if kind == "rows":
        return {"result_format": "COMPLETE"}
    if kind == "counts":
        return {"result_format": "BASIC", "partial_unexpected_count": 0}
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    if index_columns:
        result_format["unexpected_index_column_names"] = list(index_columns)
    return result_format


def _run_one(
    context: Any,
    batch_definition: Any,
    schema: str,
    table: str,
    key: tuple[str, tuple[str, ...]],
    checks: Sequence[Check],
    values: Mapping[str, str],
) -> dict[str, CheckResult]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    kind, index_columns = key
    suffix = kind if not index_columns else f"{kind}.{'.'.join(index_columns)}"
    name = f"{schema}.{table}.{suffix}"
    results: dict[str, CheckResult] = {}
    expectations = []
    for check in checks:
        try:
            expectation_class = _one_pass_rows_expectation() if check.is_query else getattr(gxe, check.expectation)
            expectation = expectation_class(
                **build_kwargs(check, values),
                description=check.description,
                severity="critical" if check.blocks else "warning",
                meta={"b2b_check": check.name},
            )
        except Exception as exc:
            results[check.name] = _errored(check, schema, f"cannot build the expectation: {_short(exc)}")
            continue
        expectations.append(expectation)
    if not expectations:
        return results
    result_format = _result_format(kind, index_columns)
    by_name = {c.name: c for c in checks}
    try:
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        run = definition.run(result_format=result_format)
    except Exception as exc:
        log.warning("quality gate: validation of %s failed to run: %s", name, exc)
        for expectation in expectations:
            check = by_name[expectation.meta["b2b_check"]]
            results[check.name] = _errored(check, schema, _short(exc))
        return results
    for outcome in run.results:
        check_name = (outcome.expectation_config.meta or {}).get("b2b_check")
        if check_name in by_name:
            results[check_name] = _from_gx(by_name[check_name], schema, outcome)
    for check in checks:  # anything GX did not report on
        results.setdefault(check.name, _errored(check, schema, "no result from Great Expectations"))
    return results


ROWS_AND_COUNT_METRIC = "gate_unexpected_rows_query.rows_and_count"


@functools.cache
def _one_pass_rows_expectation() -> type:
    """GX's `UnexpectedRowsExpectation`, with its query run once instead of twice.

    GX computes the expectation from two metrics, each running the check's query: the first
    rows (`fetchmany(200)` of the whole result, which psycopg has already transferred) and the
    row count (`SELECT COUNT(*) FROM (query)`). On a fact table the query is the expensive part
    (the key checks group 8 million rows), so the count doubled the cost of every query check.
    This subclass depends on one metric that runs the query once and fetches one row more than
    GX keeps: with at most 200 rows the count is the number of rows fetched, otherwise it asks
    for the count as GX does. Its `_validate` is GX's own, fed with those two values, so success
    (no row), `observed_value` (the count) and `details.unexpected_rows` (the first 200 rows) are
    what `UnexpectedRowsExpectation` returns. Created (and registered with GX) on first use, so
    that importing the gate does not import GX.
    """
    from typing import ClassVar

    import great_expectations.expectations as gxe
    from great_expectations.compatibility.sqlalchemy import sqlalchemy as sa
    from great_expectations.constants import MAX_RESULT_RECORDS
    from great_expectations.core.metric_domain_types import MetricDomainTypes
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine
    from great_expectations.expectations.metrics.metric_provider import metric_value
    from great_expectations.expectations.metrics.query_metric_provider import (
        QueryMetricProvider,
        render_derived_table_alias,
    )

    class GateUnexpectedRowsQueryRowsAndCount(QueryMetricProvider):
        metric_name = ROWS_AND_COUNT_METRIC
        value_keys = ("unexpected_rows_query",)
        query_param_name: ClassVar[str] = "unexpected_rows_query"

        @metric_value(engine=SqlAlchemyExecutionEngine)
        def _sqlalchemy(
            cls,
            execution_engine: SqlAlchemyExecutionEngine,
            metric_domain_kwargs: dict,
            metric_value_kwargs: dict,
            metrics: dict[str, Any],
            runtime_configuration: dict,
        ) -> tuple[list[dict[str, Any]], int]:
            batch_selectable, _, _ = execution_engine.get_compute_domain(
                metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
            )
            query = cls._get_substituted_batch_subquery_from_query_and_batch_selectable(
                query=cls._get_query_from_metric_value_kwargs(metric_value_kwargs),
                batch_selectable=batch_selectable,
                execution_engine=execution_engine,
            )
            result = execution_engine.execute_query(sa.text(query))
            try:
                rows = result.fetchmany(MAX_RESULT_RECORDS + 1)
            finally:
                result.close()
            if len(rows) <= MAX_RESULT_RECORDS:
                count = len(rows)
            else:  # more rows than GX keeps: count them as GX's row_count metric does
                counted = render_derived_table_alias(
                    subquery=query, alias="substituted_batch_subquery", dialect_name=execution_engine.dialect_name
                )
                count = int(
                    execution_engine.execute_query(
                        sa.text(f"SELECT COUNT(*) as unexpected_row_count FROM {counted}")
                    ).scalar_one()
                )
            return [row._asdict() for row in rows[:MAX_RESULT_RECORDS]], count

    class GateUnexpectedRowsExpectation(gxe.UnexpectedRowsExpectation):
        metric_dependencies: ClassVar[tuple[str, ...]] = (ROWS_AND_COUNT_METRIC,)

        def _validate(
            self,
            metrics: dict,
            runtime_configuration: dict | None = None,
            execution_engine: Any = None,
        ) -> Any:
            rows, count = metrics[ROWS_AND_COUNT_METRIC]
            return super()._validate(
                {"unexpected_rows_query.table": rows, "unexpected_rows_query.row_count": count},
                runtime_configuration=runtime_configuration,
                execution_engine=execution_engine,
            )

    return GateUnexpectedRowsExpectation


def _from_gx(check: Check, schema: str, outcome: Any) -> CheckResult:
    error = _exception_message(getattr(outcome, "exception_info", None))
    result: dict[str, Any] = dict(outcome.result or {})
    if error:
        return _errored(check, schema, error)
    success = bool(outcome.success)
    element_count = result.get("element_count")
    unexpected = result.get("unexpected_count")
    fraction = None
    examples: list[dict[str, Any]]
    if check.is_query:
        observed = result.get("observed_value")
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        examples = [_jsonable(dict(r)) for r in rows[:MAX_EXAMPLES]]
        summary = "no unexpected rows" if not observed else f"{observed} unexpected row(s)"
    elif unexpected is not None:
        observed = unexpected
        percent = result.get("unexpected_percent")
        fraction = None if percent is None else float(percent) / 100.0
        indexed = result.get("partial_unexpected_index_list") or []
        if indexed:
            examples = [_jsonable(dict(r)) for r in indexed[:MAX_EXAMPLES]]
        else:
            column = check.kwargs.get("column", "value")
            examples = [{str(column): _jsonable(v)} for v in (result.get("partial_unexpected_list") or [])]
            examples = examples[:MAX_EXAMPLES]
        summary = f"{unexpected} of {element_count} row(s) unexpected"
        if fraction is not None and unexpected:
            summary += f" ({_percent(fraction)})"
    else:
        observed = _jsonable(result.get("observed_value"))
        examples = []
        summary = f"observed {observed}"
    if check.tolerance is not None:
        summary += f"; tolerance {_percent(check.tolerance)}"
    if success and observed:
        status = "warned"  # held, but only thanks to its tolerance
        summary += " (within tolerance)"
    elif success:
        status = "passed"
    else:
        status = "blocked" if check.blocks else "warned"
    return CheckResult(
        name=check.name,
        layer=check.layer,
        table=f"{schema}.{check.table}",
        severity=check.severity,
        success=success,
        status=status,
        expectation=check.expectation,
        description=check.description,
        observed=observed if isinstance(observed, int | float) or observed is None else str(observed),
        element_count=element_count,
        unexpected_fraction=fraction,
        tolerance=check.tolerance,
        examples=examples,
        summary=summary,
    )


def _errored(check: Check, schema: str, message: str) -> CheckResult:
    return CheckResult(
        name=check.name,
        layer=check.layer,
        table=f"{schema}.{check.table}",
        severity=check.severity,
        success=False,
        status="blocked" if check.blocks else "warned",
        expectation=check.expectation,
        description=check.description,
        tolerance=check.tolerance,
        summary=f"could not run: {message}",
        error=message,
    )


def _skipped(check: Check, schema: str, reason: str) -> CheckResult:
    return CheckResult(
        name=check.name,
        layer=check.layer,
        table=f"{schema}.{check.table}",
        severity=check.severity,
        success=True,
        status="skipped",
        expectation=check.expectation,
        description=check.description,
        tolerance=check.tolerance,
        summary=f"skipped: {reason}",
    )


def _build_data_docs(context: Any, directory: Path) -> None:
    """Render GX Data Docs of this run to `directory` (best effort: never fails the gate)."""
    try:
        shutil.rmtree(directory, ignore_errors=True)  # an earlier run of the same night
        directory.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name="b2b_gate",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        context.build_data_docs(site_names=["b2b_gate"])
    except Exception:
        log.warning("quality gate: could not render the GX Data Docs to %s", directory, exc_info=True)


def _exception_message(info: Any) -> str | None:
    """The first exception message in GX's exception_info (flat, or keyed by metric)."""
    if not info:
        return None
    if isinstance(info, Mapping):
        if "raised_exception" in info:
            if info.get("raised_exception"):
                return _short(info.get("exception_message") or "an exception was raised")
            return None
        for value in info.values():
            message = _exception_message(value)
            if message:
                return message
    return None


def _short(value: Any, limit: int = 500) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return _exact_number(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _exact_number(value: Decimal) -> float | str:
    """A PostgreSQL numeric for JSON without losing a digit: a JSON number when a float holds it as
    written (below 10**15, and the float's shortest text is the same decimal, e.g. -5,
    100000.00, 0.1), else its exact decimal text (1e308 as 309 digits, 12345678901234567.25, NaN)."""
    if value.is_finite() and abs(value) < _FLOAT_EXACT_BELOW:
        as_float = float(value)
        if Decimal(repr(as_float)) == value:
            return as_float
    return f"{value:f}"


_FLOAT_EXACT_BELOW = Decimal(10) ** 15


def _one_line(example: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in example.items())
