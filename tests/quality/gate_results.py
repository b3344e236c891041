"""A night's gate result with a check of every status, for the tests of the quality page (`quality.html`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from b2b_pipeline.quality.result import CheckResult, GateResult


def _check(name: str, layer: str, status: str, **extra: object) -> CheckResult:
    table = {"raw": "raw_files.files", "core": "core__candidate.fct_deals", "marts": "marts__candidate.x"}[layer]
    fields: dict[str, object] = {
        "name": name,
        "layer": layer,
        "table": table,
        "severity": "warn" if status == "warned" else "block",
        "success": status in ("passed", "skipped"),
        "status": status,
        "expectation": "UnexpectedRowsExpectation",
        "description": f"The check {name}.",
        "summary": "no unexpected rows" if status == "passed" else f"{status}: 3 of 1,000 row(s)",
    }
    fields.update(extra)
    return CheckResult(**fields)  # type: ignore[arg-type]


def gate_result(as_of: date, *, blocked: bool = True, data_docs: str | None = "/h/data_docs/index.html") -> GateResult:
    """Three passed checks (raw, core, marts), then one warned, one skipped and (with `blocked`) one blocked,
    in the order a run lists them: the page must reorder them."""
    checks = [
        _check("raw.files_refused", "raw", "passed"),
        _check("core.deal_keys_unique", "core", "passed"),
        _check("marts.revenue_not_negative", "marts", "passed"),
        _check("core.amount_outliers", "core", "warned", tolerance=0.01),
        _check("marts.previous_night_close", "marts", "skipped", summary="skipped: no previous night"),
    ]
    if blocked:
        checks.append(
            _check(
                "core.deals_account_exists",
                "core",
                "blocked",
                tolerance=0.001,
                examples=[{"deal_id": "D<1>", "crm_account_id": "A&9"}],
            )
        )
    return GateResult(
        as_of=as_of,
        passed=not blocked,
        checks=checks,
        started_at=datetime(2026, 4, 1, 2, 30, tzinfo=UTC),
        duration_seconds=4.2,
        schemas={"raw": "raw_files", "core": "core__candidate", "marts": "marts__candidate"},
        since_batch_id=3,
        through_batch_id=5,
        data_docs=data_docs,
    )
