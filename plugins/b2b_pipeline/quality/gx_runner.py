"""The gate's checks run by Great Expectations, by SQL pushdown, on an ephemeral GX context.

One SQL data source on the warehouse, one table asset per checked table, and per table as few
scans as GX allows (see `_run_table`): GX computes counts and fetches at most a handful of
example rows, never a table. GX is imported when a gate runs, not when this module is.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from b2b_pipeline.quality.gx_translate import from_gx, short
from b2b_pipeline.quality.result import MAX_EXAMPLES, CheckResult, errored
from b2b_pipeline.quality.suites import Check, build_kwargs

log = logging.getLogger(__name__)


def sqlalchemy_url(dsn: str) -> str:
    """The warehouse URL for SQLAlchemy with psycopg 3 (`postgresql+psycopg://`), unix sockets included."""
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def validate(
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
                results.update({c.name: errored(c, schema, short(exc)) for c in checks})
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
      (`gx_rows.GateUnexpectedRowsExpectation`).
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

    from b2b_pipeline.quality.gx_rows import GateUnexpectedRowsExpectation

    kind, index_columns = key
    suffix = kind if not index_columns else f"{kind}.{'.'.join(index_columns)}"
    name = f"{schema}.{table}.{suffix}"
    results: dict[str, CheckResult] = {}
    expectations = []
    for check in checks:
        try:
            expectation_class = GateUnexpectedRowsExpectation if check.is_query else getattr(gxe, check.expectation)
            expectation = expectation_class(
                **build_kwargs(check, values),
                description=check.description,
                severity="critical" if check.blocks else "warning",
                meta={"b2b_check": check.name},
            )
        except Exception as exc:
            results[check.name] = errored(check, schema, f"cannot build the expectation: {short(exc)}")
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
            results[check.name] = errored(check, schema, short(exc))
        return results
    for outcome in run.results:
        check_name = (outcome.expectation_config.meta or {}).get("b2b_check")
        if check_name in by_name:
            results[check_name] = from_gx(by_name[check_name], schema, outcome)
    for check in checks:  # anything GX did not report on
        results.setdefault(check.name, errored(check, schema, "no result from Great Expectations"))
    return results


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
