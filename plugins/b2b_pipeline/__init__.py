"""B2B sales analytics pipeline: file-drop extract & load, dbt marts, quality gate, Airflow.

The package's layers, lowest first (docs/code-layout.md; tests/test_layers.py keeps them so: no
module imports one of a higher layer, and there is no import circle):

1. `config`: every setting and where the project's files are;
2. `warehouse`, `files`, `page_style`, `stages`, `night`: the warehouse connection, atomic files,
   the pages' stylesheet, the canonical stages (from the dbt seed), a night and its cutoff;
3. `night_lock`, `publish`: the warehouse's night lock, the candidate schemas and their swap;
4. `filedrop`, `generate`, `transform`: loading the drop, the demo company, running dbt;
5. `quality`: the quality gate (`quality.commands`, the `b2b gate` CLI, belongs to the top);
6. `reporting`: the sales report, the dbt docs, the report's web app;
7. `nightly`: the night's steps that string the layers together;
8. `orchestration`, `bench`: Airflow (the hook, the task guard, running the DAG), the benchmark;
9. `cli`, `cli_support`, `quality.commands`: the `b2b` command.
"""

__version__ = "0.1.0"
