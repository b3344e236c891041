"""The dbt macros that read the pipelines that count: the var as a list (run_dbt, tests) and as JSON text
(the DAG renders the night's list so), an id with a comma kept whole."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.transform.dbt_runner import night_vars, run_dbt

pytestmark = pytest.mark.integration

SQL = "select {{ is_sales_pipeline('pipeline_id') }} as counted, '{{ sales_pipelines_list() | join('|') }}' as ids"


@pytest.mark.parametrize(
    ("pipelines", "counted", "ids"),
    [
        (["Sales, EU", "5521"], "coalesce(pipeline_id in ('Sales, EU', '5521'), false)", "Sales, EU|5521"),
        ('["Sales, EU", "5521"]', "coalesce(pipeline_id in ('Sales, EU', '5521'), false)", "Sales, EU|5521"),
    ],
    ids=["list", "json-text"],  # the empty list (every pipeline counts) is every other night's
)
def test_the_pipelines_that_count(
    embedded_admin_dsn: str, tmp_path: Path, pipelines: object, counted: str, ids: str
) -> None:
    compiled = run_dbt(
        ["compile", "--inline", SQL],
        dsn=embedded_admin_dsn,
        vars=night_vars(date(2026, 11, 25)) | {"sales_pipelines": pipelines},
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )
    code = compiled.raw.results[0].node.compiled_code
    assert f"select {counted} as counted, '{ids}' as ids" == " ".join(code.split())
