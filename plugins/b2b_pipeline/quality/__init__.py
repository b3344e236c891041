"""The quality gate: Great Expectations suites (`expectations/*.yml`) run by SQL pushdown before a night publishes.

- `suites`: the YAML suites, read into checks (name, table, expectation, severity, tolerance).
- `gate`: `run_gate()` validates the raw, staging, candidate core and candidate marts layers;
  `enforce_gate()` is the nightly step: it writes the reports and raises `GateBlocked`.
- `result`: the verdict as values (`CheckResult`, `GateResult`, `GateBlocked`).
- `state`: `raw_files.gate_runs`, which load batches tonight's raw checks see, operator acceptance.
- `gx_runner`: the checks run by Great Expectations (SQL pushdown); `gx_rows`: the one-pass
  `UnexpectedRowsExpectation`; `gx_translate`: GX's results into `CheckResult`s.
- `report`: where the reports go (`B2B_HOME/reports/<as-of date>/gate.json`, `quality.html`).
- `commands`: the `b2b gate` command line.

See docs/quality-gate.md. Nothing here imports Great Expectations until a gate runs.
"""
