"""Transform: run the dbt project (staging -> intermediate -> core -> marts) against the warehouse.

- `dbt_runner`: one in-process dbt invocation (`run_dbt`), the night's dbt vars (`night_vars`) and
  the environment the project's one profile reads (`dbt_environment`).
- `manifest`: the compiled manifest the DAG is rendered from.
"""

from b2b_pipeline.transform.dbt_runner import DbtError, DbtNodeResult, DbtResult, night_vars, run_dbt

__all__ = ["DbtError", "DbtNodeResult", "DbtResult", "night_vars", "run_dbt"]
