"""GX's `UnexpectedRowsExpectation`, with its query run once instead of twice.

GX computes the expectation from two metrics, each running the check's query: the first
rows (`fetchmany(200)` of the whole result, which psycopg has already transferred) and the
row count (`SELECT COUNT(*) FROM (query)`). On a fact table the query is the expensive part
(the key checks group 8 million rows), so the count doubled the cost of every query check.
This subclass depends on one metric that runs the query once and fetches one row more than
GX keeps: with at most 200 rows the count is the number of rows fetched, otherwise it asks
for the count as GX does. Its `_validate` is GX's own, fed with those two values, so success
(no row), `observed_value` (the count) and `details.unexpected_rows` (the first 200 rows) are
what `UnexpectedRowsExpectation` returns.

This module imports GX and registers the metric with it: the runner imports it only when a
gate runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

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

ROWS_AND_COUNT_METRIC = "gate_unexpected_rows_query.rows_and_count"


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
