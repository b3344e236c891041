"""The dbt runner without a warehouse: URL -> profile environment, project discovery, errors, parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2b_pipeline import config
from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.transform import dbt_runner
from b2b_pipeline.transform.dbt_runner import DbtError, DbtNodeResult, dsn_to_env, run_dbt


def test_tcp_url_becomes_profile_env() -> None:
    env = dsn_to_env("postgresql://user:pw@127.0.0.1:5432/db")
    assert env == {
        "B2B_PG_HOST": "127.0.0.1",
        "B2B_PG_PORT": "5432",
        "B2B_PG_USER": "user",
        "B2B_PG_PASSWORD": "pw",
        "B2B_PG_DBNAME": "db",
        "B2B_PG_SSLMODE": "prefer",
    }


def test_unix_socket_url_becomes_profile_env() -> None:
    env = dsn_to_env("postgresql://postgres:@/postgres?host=/tmp/some/dir")
    assert env == {
        "B2B_PG_HOST": "/tmp/some/dir",
        "B2B_PG_PORT": "5432",
        "B2B_PG_USER": "postgres",
        "B2B_PG_PASSWORD": "",
        "B2B_PG_DBNAME": "postgres",
        "B2B_PG_SSLMODE": "prefer",
    }


def test_percent_encoded_socket_and_password() -> None:
    env = dsn_to_env("postgresql://app:p%40ss%3Aw%2Fd@%2Fvar%2Frun%2FPG:6543/warehouse")
    assert env["B2B_PG_HOST"] == "/var/run/PG"  # not lower-cased
    assert env["B2B_PG_PORT"] == "6543"
    assert env["B2B_PG_USER"] == "app"
    assert env["B2B_PG_PASSWORD"] == "p@ss:w/d"
    assert env["B2B_PG_DBNAME"] == "warehouse"


def test_defaults_and_query_overrides() -> None:
    env = dsn_to_env("postgres://bob@db.example.com/sales?port=7000&sslmode=disable")
    assert env["B2B_PG_HOST"] == "db.example.com"
    assert env["B2B_PG_PORT"] == "7000"
    assert env["B2B_PG_PASSWORD"] == ""
    assert dsn_to_env("postgresql+psycopg://u@[::1]:5433/d")["B2B_PG_HOST"] == "::1"


def test_not_a_postgres_url() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        dsn_to_env("mysql://u@h/d")


def test_project_dir_is_found_and_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(config.DBT_PROJECT_DIR_ENV, raising=False)
    assert (dbt_project_dir() / "dbt_project.yml").is_file()
    monkeypatch.setenv(config.DBT_PROJECT_DIR_ENV, str(tmp_path))
    assert dbt_project_dir() == tmp_path.resolve()


def test_dbt_error_lists_failed_nodes() -> None:
    error = DbtError(
        "dbt build failed",
        [DbtNodeResult("model.b2b_pipeline.fct_deals", "error", "relation does not exist")],
    )
    assert "model.b2b_pipeline.fct_deals [error]: relation does not exist" in str(error)
    assert error.failures[0].failed


def test_environment_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_PG_HOST", "before")
    monkeypatch.delenv("B2B_PG_DBNAME", raising=False)
    with dbt_runner._environ({"B2B_PG_HOST": "during", "B2B_PG_DBNAME": "x"}):
        pass
    import os

    assert os.environ["B2B_PG_HOST"] == "before"
    assert "B2B_PG_DBNAME" not in os.environ


@pytest.mark.slow
def test_project_parses(tmp_path: Path) -> None:
    """`dbt parse` needs no database: every model, YAML property and test definition must be valid."""
    result = run_dbt(
        ["parse"],
        dsn="postgresql://nobody@127.0.0.1:1/nothing",
        vars={},
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
    )
    assert result.success
    manifest = result.raw
    models = {n.name for n in manifest.nodes.values() if n.resource_type == "model"}
    assert {
        "sales_funnel",
        "sales_performance_monthly",
        "revenue_monthly",
        "retention_monthly",
        "repeat_purchase_monthly",
        "customer_value",
        "dim_accounts",
        "fct_deals",
    } <= models
    marts = [n for n in manifest.nodes.values() if n.resource_type == "model" and n.fqn[1] == "marts"]
    assert {n.schema for n in marts} == {"marts"}
    undocumented = [
        f"{n.name}.{c}"
        for n in manifest.nodes.values()
        if n.resource_type == "model"
        for c, col in n.columns.items()
        if not col.description
    ]
    assert not undocumented
