"""B2B sales analytics pipeline: file-drop extract & load, dbt marts, quality gate, Airflow."""

__version__ = "0.1.0"
