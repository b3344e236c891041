"""The data dictionary: `dbt docs generate --static` into B2B_HOME/reports/dbt_docs/, and its coverage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from b2b_pipeline.reporting import build_dbt_docs, build_report, docs_coverage

from .conftest import AS_OF


def _model(name: str, schema: str, description: str, columns: dict[str, str]) -> dict[str, object]:
    return {
        "resource_type": "model",
        "name": name,
        "schema": schema,
        "description": description,
        "columns": {c: {"name": c, "description": d} for c, d in columns.items()},
    }


def test_docs_coverage_lists_undocumented_published_models_and_columns() -> None:
    manifest = {
        "nodes": {
            "model.p.revenue_monthly": _model(
                "revenue_monthly", "marts", "Revenue.", {"month": "Month.", "revenue": ""}
            ),
            "model.p.dim_x": _model("dim_x", "core", "", {"x_key": "Key."}),
            "model.p.stg_y": _model("stg_y", "staging", "", {"y": ""}),  # not published: not checked
            "test.p.t": {"resource_type": "test", "schema": "marts"},
        }
    }
    # the built table has a column the YAML does not declare
    catalog = {"nodes": {"model.p.revenue_monthly": {"columns": {"MONTH": {}, "REVENUE": {}, "EXTRA": {}}}}}
    coverage = docs_coverage(manifest, catalog)
    assert coverage.models == ["dim_x"]
    assert coverage.columns == ["revenue_monthly.extra", "revenue_monthly.revenue"]
    assert (coverage.checked_models, coverage.checked_columns) == (2, 4)
    assert not coverage.complete


@pytest.mark.integration
@pytest.mark.slow
def test_dbt_docs_are_generated_and_linked(published: str, b2b_home: Path) -> None:
    page = build_dbt_docs(published, b2b_home, as_of=AS_OF)
    folder = b2b_home / "reports" / "dbt_docs"
    assert page == folder / "static_index.html"
    assert {p.name for p in folder.iterdir()} == {
        "static_index.html",
        "index.html",
        "manifest.json",
        "catalog.json",
        "docs_coverage.json",
    }
    text = page.read_text(encoding="utf-8")
    assert "customer_value" in text and "sales_funnel" in text
    assert not list(b2b_home.glob(".dbt_docs_build.*"))  # the scratch target is gone

    # every published model and column of the project is described
    coverage = json.loads((folder / "docs_coverage.json").read_text())
    assert coverage["checked_models"] >= 16
    assert coverage["models_without_description"] == []
    assert coverage["columns_without_description"] == []

    report = build_report(published, AS_OF, b2b_home).read_text(encoding="utf-8")
    assert 'href="../dbt_docs/static_index.html" data-link="dbt_docs"' in report
