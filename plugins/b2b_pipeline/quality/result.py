"""The gate's verdict as values: one `CheckResult` per check, the night's `GateResult`, `GateBlocked`.

Shared by the runner, the reports and the CLI; imports neither Great Expectations nor the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from b2b_pipeline.quality.suites import Check

MAX_EXAMPLES = 5  # unexpected rows kept per check, in the reports and the GateBlocked message


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
    # the deployment's settings the night's numbers depend on (config.reporting_settings), as shown
    settings: dict[str, str] = field(default_factory=dict)

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
            "settings": dict(self.settings),
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


def errored(check: Check, schema: str, message: str) -> CheckResult:
    """The result of a check that could not run: it fails, and blocks when its severity is `block`."""
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


def skipped(check: Check, schema: str, reason: str) -> CheckResult:
    """The result of a check not run because what it compares with does not exist, or is of other
    settings (`reason` says which): it holds."""
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


def _one_line(example: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in example.items())
