"""The shared layout of the base and unioned models (dbt_project/macros/load_metadata.sql, unioned.sql).

Every base model ends with the same six load-metadata columns, of fixed types: the base tables are
incremental and outlive the code, so their layout must not drift. A unioned model reads the canonical
columns of its entity from every staging relation it is given; a second source system is checked here
with a throwaway staging model in a copy of the project.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.transform import DbtError, run_dbt

from .raw_layer import create_raw_tables

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
AS_OF = {"as_of_date": "2026-01-31"}

LOAD_METADATA = [
    ("_file_id", "bigint"),
    ("_line", "bigint"),
    ("_batch_id", "bigint"),
    ("_file", "text"),
    ("_folder_date", "date"),
    ("_loaded_at", "timestamp with time zone"),
]

OTHER_USERS = """
select
    'u1'::text as user_id,
    'Anna Petrova'::text as full_name,
    'anna@example.com'::text as email,
    {team}
    true as is_active,
    timestamptz '2026-01-10 09:00:00+00' as updated_at
"""


def _models(folder: str) -> list[Path]:
    return sorted((DBT_PROJECT / "models" / folder).glob("*.sql"))


def test_base_models_take_load_metadata_from_the_macro() -> None:
    base = _models("staging/files/base")
    assert len(base) == 12
    for path in base:
        text = path.read_text()
        assert text.count("with_load_metadata(") == 1, path.name
        assert "file_loads" not in text, path.name
        assert text.rstrip().endswith("select * from final"), path.name


def test_unioned_models_take_their_columns_from_the_macro() -> None:
    unioned = _models("intermediate/unioned")
    assert unioned
    for path in unioned:
        assert len(re.findall(r"union_staging\(", path.read_text())) == 1, path.name


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
        (f"{schema}.{table}",),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


@pytest.mark.integration
@pytest.mark.slow
def test_layout_on_a_warehouse_with_a_second_crm(warehouse: str, tmp_path: Path) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        create_raw_tables(conn)

    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    other_users = project / "models" / "staging" / "othercrm" / "stg_othercrm__users.sql"
    other_users.parent.mkdir()
    other_users.write_text(OTHER_USERS.format(team="'north'::text as team,"))
    sales_reps = project / "models" / "intermediate" / "unioned" / "int_sales_reps_unioned.sql"
    text = sales_reps.read_text()
    assert "ref('stg_hubspot__users')]" in text
    sales_reps.write_text(
        text.replace("ref('stg_hubspot__users')]", "ref('stg_hubspot__users'), ref('stg_othercrm__users')]")
    )
    night = {**AS_OF, "crm_source": "othercrm"}  # the unions read the night's CRM only

    dirs = {"target_path": tmp_path / "target", "log_path": tmp_path / "logs", "project_dir": project}
    command = ["run", "--select", "path:models/staging/files/base", "+int_sales_reps_unioned"]
    run_dbt(command, dsn=warehouse, vars=night, **dirs)

    with psycopg.connect(warehouse) as conn:
        for path in _models("staging/files/base"):
            assert _columns(conn, "staging", path.stem)[-6:] == LOAD_METADATA, path.stem
        assert _columns(conn, "intermediate", "int_sales_reps_unioned") == [
            ("sales_rep_key", "text"),
            ("source_system", "text"),
            ("user_id", "text"),
            ("full_name", "text"),
            ("email", "text"),
            ("team", "text"),
            ("is_active", "boolean"),
            ("updated_at", "timestamp with time zone"),
        ]
        rows = conn.execute(
            "select sales_rep_key, source_system, user_id, team from intermediate.int_sales_reps_unioned"
        ).fetchall()
    assert rows == [("othercrm:u1", "othercrm", "u1", "north")]

    # a staging model without a canonical column fails the unioned model, naming the column
    other_users.write_text(OTHER_USERS.format(team=""))
    with pytest.raises(DbtError, match="stg_othercrm__users lacks canonical columns of 'sales_reps': team"):
        run_dbt(["run", "--select", "stg_othercrm__users", "int_sales_reps_unioned"], dsn=warehouse, vars=night, **dirs)
