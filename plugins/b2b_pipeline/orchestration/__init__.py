"""Airflow glue: the warehouse hook, the dbt profile mapping, and running a night through the real DAG."""
