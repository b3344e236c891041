"""The quality gate: Great Expectations suites (`expectations/*.yml`) run by SQL pushdown before a night publishes.

- `suites`: the YAML suites, read into checks (name, table, expectation, severity, tolerance).
- `gate`: `run_gate()` validates the raw, staging, candidate core and candidate marts layers;
  `enforce_gate()` is the nightly step: it writes the reports and raises `GateBlocked`.
- `report`: where the reports go (`B2B_HOME/reports/<as-of date>/gate.json`, `quality.html`).

See docs/quality-gate.md. Nothing here imports Great Expectations until a gate runs.
"""
