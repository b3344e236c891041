"""Airflow for the DAG tests: a home of its own under a temporary B2B_HOME, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="b2b_dag_tests_"))
os.environ.setdefault("AIRFLOW_HOME", str(_HOME / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow' / 'airflow.db'}")


@pytest.fixture(scope="session")
def manifest() -> Path:
    """The compiled dbt manifest the DAG is rendered from (dbt parse needs no database)."""
    from b2b_pipeline.transform.manifest import ensure_manifest

    return ensure_manifest("postgresql://postgres@127.0.0.1:5432/postgres")
