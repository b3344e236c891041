"""The expectation suites as data: `expectations/<layer>.yml`, read into `Check`s.

One YAML file per layer (`raw.yml`, `staging.yml`, `core.yml`, `marts.yml`); see
docs/quality-gate.md for the format. Every check names a table (without schema: the
runner knows which schema each layer validates), a Great Expectations expectation
class with its kwargs (or an SQL query for `UnexpectedRowsExpectation`), a severity
(`block` or `warn`) and, where it applies, a tolerance:

- on a column map expectation (one with GX's `mostly`), `tolerance` is the share of
  rows allowed to break it (`mostly = 1 - tolerance`); a check that holds only thanks
  to its tolerance is reported as a warning;
- in an `UnexpectedRowsExpectation` query, `{tolerance}` is replaced by its value.

Queries may also use `{as_of_date}`, `{as_of_month}` (SQL `date` literals), `{cutoff}`
(the first instant not counted, a `timestamptz`), `{since_batch_id}` and
`{through_batch_id}` (tonight's load batches are those with `since < batch_id <=
through`), `{schema}` (the schema the layer validates), `{published}` (the published
schema of the layer) and `{table}`; the plausibility checks use `{max_amount}` and
`{outlier_factor}` (exact `numeric` literals of the settings `B2B_GATE_MAX_AMOUNT` and
`B2B_GATE_OUTLIER_FACTOR`, see `b2b_pipeline.config.gate_amount_limits`); `{reporting_currency}`,
`{fx_base_currency}`, `{reporting_timezone}` and `{sales_pipelines}` are text literals of the
deployment's settings (`quality.gate.shown_settings`); `{batch}` is left
to GX, which puts the table there. A literal brace is doubled (`{{`), as GX requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Formatter
from typing import Any

import yaml

from b2b_pipeline.config import expectations_dir

LAYERS: tuple[str, ...] = ("raw", "staging", "core", "marts")
SEVERITIES: tuple[str, ...] = ("block", "warn")
UNEXPECTED_ROWS = "UnexpectedRowsExpectation"
PLACEHOLDERS: tuple[str, ...] = (
    "as_of_date",
    "as_of_month",
    "cutoff",
    "since_batch_id",
    "through_batch_id",
    "schema",
    "published",
    "table",
    "tolerance",
    "max_amount",
    "outlier_factor",
    "reporting_currency",
    "fx_base_currency",
    "reporting_timezone",
    "sales_pipelines",
)
_PLACEHOLDER = re.compile(r"(?<!\{)\{(" + "|".join(PLACEHOLDERS) + r")\}(?!\})")
_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")
_CHECK_KEYS = frozenset(
    {
        "name",
        "description",
        "table",
        "expectation",
        "kwargs",
        "query",
        "columns",
        "severity",
        "tolerance",
        "example_columns",
        "only_if_exists",
        "unless_settings_changed",
    }
)


class SuiteError(ValueError):
    """An expectations file that does not say what the gate needs."""


@dataclass(frozen=True)
class Check:
    """One check of a layer: an expectation on one table, with its severity and tolerance."""

    name: str
    layer: str
    table: str
    description: str
    expectation: str
    severity: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    query: str | None = None
    tolerance: float | None = None
    example_columns: tuple[str, ...] = ()
    only_if_exists: str | None = None
    # skipped, saying why, when the deployment's settings differ from the published night's
    # (a comparison with that night would compare numbers of two settings)
    unless_settings_changed: bool = False

    @property
    def is_query(self) -> bool:
        return self.expectation == UNEXPECTED_ROWS

    @property
    def blocks(self) -> bool:
        return self.severity == "block"


@dataclass(frozen=True)
class Suite:
    """The checks of one layer, from `expectations/<layer>.yml`."""

    layer: str
    description: str
    checks: tuple[Check, ...]
    path: Path | None = None


def load_suites(directory: Path | None = None, layers: Iterable[str] = LAYERS) -> list[Suite]:
    """Read and validate the suite of every layer; raises SuiteError naming the file and the problem."""
    directory = directory or expectations_dir()
    suites = []
    names: dict[str, str] = {}
    for layer in layers:
        path = directory / f"{layer}.yml"
        if not path.is_file():
            raise SuiteError(f"{path}: no expectation suite for layer {layer!r}")
        suite = parse_suite(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, layer, path)
        for check in suite.checks:
            if check.name in names:
                raise SuiteError(f"{path}: check {check.name!r} is also defined in {names[check.name]}")
            names[check.name] = str(path)
        suites.append(suite)
    return suites


def parse_suite(document: Mapping[str, Any], layer: str, path: Path | None = None) -> Suite:
    """A Suite from the parsed YAML of one layer's file."""
    where = str(path or f"{layer}.yml")
    if not isinstance(document, Mapping):
        raise SuiteError(f"{where}: expected a mapping with `layer` and `checks`")
    if document.get("layer", layer) != layer:
        raise SuiteError(f"{where}: says layer {document.get('layer')!r}, expected {layer!r}")
    raw_checks = document.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise SuiteError(f"{where}: `checks` must be a non-empty list")
    default_examples = document.get("example_columns") or {}
    if not isinstance(default_examples, Mapping):
        raise SuiteError(f"{where}: `example_columns` maps a table to the columns that identify its rows")
    checks: list[Check] = []
    for index, item in enumerate(raw_checks):
        label = f"{where}: check #{index + 1}"
        if isinstance(item, Mapping) and item.get("name"):
            label = f"{where}: check {item['name']!r}"
        for check in _parse_check(item, layer, label):
            if not check.example_columns and not check.is_query and check.table in default_examples:
                check = replace(check, example_columns=tuple(default_examples[check.table]))
            checks.append(check)
    seen: set[str] = set()
    for check in checks:
        if check.name in seen:
            raise SuiteError(f"{where}: check name {check.name!r} is used twice")
        seen.add(check.name)
    return Suite(layer=layer, description=str(document.get("description", "")).strip(), checks=tuple(checks), path=path)


def _parse_check(item: Any, layer: str, label: str) -> list[Check]:
    if not isinstance(item, Mapping):
        raise SuiteError(f"{label}: a check is a mapping")
    unknown = set(item) - _CHECK_KEYS
    if unknown:
        raise SuiteError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "description", "table", "expectation", "severity"):
        if not item.get(key):
            raise SuiteError(f"{label}: `{key}` is required")
    name, table, expectation = str(item["name"]), str(item["table"]), str(item["expectation"])
    if not _NAME.match(name):
        raise SuiteError(f"{label}: name must be lower case letters, digits, `_` and `.`")
    if not re.match(r"^[a-z_][a-z0-9_]*$", table):
        raise SuiteError(f"{label}: table must be a lower-case name without schema")
    severity = str(item["severity"])
    if severity not in SEVERITIES:
        raise SuiteError(f"{label}: severity must be one of {', '.join(SEVERITIES)}")
    tolerance = item.get("tolerance")
    if tolerance is not None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
            raise SuiteError(f"{label}: tolerance must be a number in [0, 1)")
        tolerance = float(tolerance)
    kwargs = dict(item.get("kwargs") or {})
    expectation_class = _expectation_class(expectation, label)
    base = Check(
        name=name,
        layer=layer,
        table=table,
        description=" ".join(str(item["description"]).split()),
        expectation=expectation,
        severity=severity,
        kwargs=kwargs,
        query=None,
        tolerance=tolerance,
        example_columns=tuple(item.get("example_columns") or ()),
        only_if_exists=item.get("only_if_exists"),
        unless_settings_changed=bool(item.get("unless_settings_changed", False)),
    )
    if expectation == UNEXPECTED_ROWS:
        query = item.get("query")
        if not query or kwargs or item.get("columns"):
            raise SuiteError(f"{label}: an {UNEXPECTED_ROWS} takes a `query` (and no kwargs or columns)")
        query = str(query).strip()
        fields = _fields(query, label)
        if "batch" not in fields:
            raise SuiteError(f"{label}: the query must read the checked table as {{batch}}")
        if re.search(r"\{batch\}\s+as\b", query, re.IGNORECASE):
            raise SuiteError(f"{label}: GX gives {{batch}} its own alias: read it in a CTE to name it")
        if re.search(r"\bjoin\b", query, re.IGNORECASE):
            # GX renders {batch} without an alias in a query with a JOIN, with one otherwise
            raise SuiteError(f"{label}: no JOIN in a query: read {{batch}} in a CTE and use (not) exists")
        unknown_fields = fields - {"batch", *PLACEHOLDERS}
        if unknown_fields:
            raise SuiteError(f"{label}: unknown placeholder(s) {', '.join(sorted(unknown_fields))}")
        if tolerance is not None and "tolerance" not in fields:
            raise SuiteError(f"{label}: a tolerance is given but the query does not use {{tolerance}}")
        if tolerance is None and "tolerance" in fields:
            raise SuiteError(f"{label}: the query uses {{tolerance}} but the check has no tolerance")
        return [replace(base, query=query)]
    if item.get("query"):
        raise SuiteError(f"{label}: only an {UNEXPECTED_ROWS} takes a `query`")
    if "mostly" in kwargs:
        raise SuiteError(f"{label}: give the share of rows allowed to break the check as `tolerance`, not `mostly`")
    if tolerance is not None and "mostly" not in expectation_class.__fields__:
        raise SuiteError(f"{label}: {expectation} has no `mostly`, so it cannot take a tolerance")
    checks = [base]
    columns = item.get("columns")
    if columns:
        if "column" in kwargs or not isinstance(columns, list):
            raise SuiteError(f"{label}: `columns` is a list, used instead of kwargs.column")
        checks = [replace(base, name=f"{name}.{c}", kwargs={**kwargs, "column": str(c)}) for c in columns]
    for check in checks:
        try:
            expectation_class(**build_kwargs(check))
        except Exception as exc:
            raise SuiteError(f"{label}: invalid kwargs for {expectation}: {exc}") from exc
    return checks


def _fields(query: str, label: str) -> set[str]:
    try:
        return {f[1] for f in Formatter().parse(query) if f[1] is not None}
    except ValueError as exc:
        raise SuiteError(f"{label}: unpaired brace in the query ({exc}); double a literal brace") from exc


def _expectation_class(name: str, label: str) -> type:
    import great_expectations.expectations as gxe

    cls = getattr(gxe, name, None)
    if cls is None or not isinstance(cls, type):
        raise SuiteError(f"{label}: {name} is not an expectation of great_expectations.expectations")
    return cls


def build_kwargs(check: Check, values: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The kwargs to construct the check's GX expectation with (query placeholders filled from `values`)."""
    kwargs: dict[str, Any] = dict(check.kwargs)
    if check.is_query:
        assert check.query is not None
        kwargs = {"unexpected_rows_query": render_query(check, values or {})}
    elif check.tolerance is not None:
        kwargs["mostly"] = round(1.0 - check.tolerance, 12)
    return kwargs


def render_query(check: Check, values: Mapping[str, str]) -> str:
    """The check's query with every placeholder but `{batch}` filled in."""
    assert check.query is not None
    full = {**values, "table": check.table}
    if check.tolerance is not None:
        full["tolerance"] = repr(check.tolerance)

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in full:
            raise SuiteError(f"check {check.name}: no value for {{{key}}}")
        return str(full[key])

    return _PLACEHOLDER.sub(fill, check.query)


def render_text(text: str, values: Mapping[str, str], table: str) -> str:
    """A placeholder-bearing string outside a query (e.g. `only_if_exists`), filled in."""
    full = {**values, "table": table}
    return _PLACEHOLDER.sub(lambda m: str(full.get(m.group(1), m.group(0))), text)
