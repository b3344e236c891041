"""Great Expectations' validation results, translated into the gate's `CheckResult`s.

What the reports show: the unexpected count and share, at most MAX_EXAMPLES example rows with
numbers kept exact, a one-line summary, and the status (passed, warned within tolerance, blocked).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from b2b_pipeline.quality.result import MAX_EXAMPLES, CheckResult, errored
from b2b_pipeline.quality.suites import Check


def from_gx(check: Check, schema: str, outcome: Any) -> CheckResult:
    error = _exception_message(getattr(outcome, "exception_info", None))
    result: dict[str, Any] = dict(outcome.result or {})
    if error:
        return errored(check, schema, error)
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


def _exception_message(info: Any) -> str | None:
    """The first exception message in GX's exception_info (flat, or keyed by metric)."""
    if not info:
        return None
    if isinstance(info, Mapping):
        if "raised_exception" in info:
            if info.get("raised_exception"):
                return short(info.get("exception_message") or "an exception was raised")
            return None
        for value in info.values():
            message = _exception_message(value)
            if message:
                return message
    return None


def short(value: Any, limit: int = 500) -> str:
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
