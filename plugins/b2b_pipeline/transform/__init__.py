"""Transform: run the dbt project (staging -> intermediate -> core -> marts) against the warehouse."""

from b2b_pipeline.transform.dbt_runner import (
    DbtError,
    DbtNodeResult,
    DbtResult,
    build_marts,
    dbt_project_dir,
    dsn_to_env,
    run_dbt,
)

__all__ = [
    "DbtError",
    "DbtNodeResult",
    "DbtResult",
    "build_marts",
    "dbt_project_dir",
    "dsn_to_env",
    "run_dbt",
]
