"""Airflow glue: the warehouse hook and connection, the task guard (the night lock, the dbt
profile's environment), the failure callback, and running a night through the real DAG."""
