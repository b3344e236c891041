"""The API sources: connectors that land a CRM or billing system's records in `raw_<source>`.

- `landing`: the common part, on dlt: the raw row of a version, the insert-only raw tables, the
  throttled and retrying HTTP session, running a source into the warehouse.
- `amocrm`, `bitrix24`: one package per service, each with its connector and a local fake of the
  service for tests and the demo.
"""

import os

# dlt reports anonymous usage to dlthub unless told not to, and reads that setting once: set before
# any module of this package imports dlt. A night phones nobody (an operator may still opt in).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
# dlt also looks up its settings in Airflow Variables when Airflow is installed: an import of Airflow
# (which reconfigures the process's logging) and, outside a task, queries of a metadata database
# that may not exist. The connectors get their credentials and settings from us, never from dlt's
# configuration: that provider stays off.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
