"""The Airflow configuration of the production shape, in one place: CeleryExecutor, the metadata
database, the Redis broker, the execution API, the DAGs and plugins folders, the sizing and the
warehouse connection.

Two places run that shape and both take their settings from `celery_environment()`:
- `docker-compose.yml`: its `x-airflow-common` environment is `celery_environment(COMPOSE)` plus the
  keys only a container deployment has (`COMPOSE_ONLY`: secrets, the login, the mounted paths);
  `tests/test_docker_compose.py` fails when the two differ by a key or a value.
- the integration test of the night under a scheduler and Celery workers
  (`tests/orchestration/test_celery_night.py`), which starts the same components as separate
  processes on this machine with `celery_environment()` for its own hosts and folders.

What differs between them is where things are (a `Deployment`), never how Airflow is configured.
"""

from __future__ import annotations

from dataclasses import dataclass

EXECUTOR = "CeleryExecutor"

# What every Airflow that runs the nightly DAG gets, the production shape and the local one of `b2b run` and
# `b2b airflow` (local_airflow.airflow_environment) alike.
PIPELINE_SETTINGS = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
    # the pipeline phones nobody: no usage reports from Airflow or cosmos (each would wait on the network)
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "false",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "false",
    # cosmos copies every status of the dbt build to a Variable, for a retry that skips the build; the
    # producer's retry here builds again (orchestration/dbt_watcher.py), so the copies are not needed
    "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "false",
}


@dataclass(frozen=True)
class Deployment:
    """Where the components of one deployment find each other and the project."""

    dags_folder: str
    plugins_folder: str
    metadata_db: str  # SQLAlchemy URL of Airflow's metadata database (PostgreSQL, psycopg2)
    broker_url: str  # the Celery broker (Redis)
    execution_api_url: str  # the API server's execution API, which the workers' tasks report to
    warehouse_dsn: str  # the analytics warehouse (a postgresql:// URL)
    worker_concurrency: str  # tasks one Celery worker runs at once
    parallelism: str  # tasks running at once over all workers


# docker-compose.yml: the services' host names, the image's folders, the secrets from .env.
# Each Celery worker runs 2 tasks at once (one per CPU of a 2-CPU container: the dbt step and the gate
# spend their time in the warehouse, not in the worker); 8 over all workers lets 4 such workers share
# the night. Both are variables of .env, for bigger workers.
COMPOSE = Deployment(
    dags_folder="/opt/airflow/dags",
    plugins_folder="/opt/airflow/plugins",
    metadata_db=(
        "postgresql+psycopg2://airflow:${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in .env}@postgres/airflow"
    ),
    broker_url="redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}@redis:6379/0",
    execution_api_url="http://airflow-apiserver:8080/execution/",
    warehouse_dsn=(
        "postgresql://${B2B_WAREHOUSE_USER:-b2b}:${B2B_WAREHOUSE_PASSWORD:?set B2B_WAREHOUSE_PASSWORD in .env}"
        "@warehouse:5432/${B2B_WAREHOUSE_DB:-analytics}"
    ),
    worker_concurrency="${AIRFLOW_WORKER_CONCURRENCY:-2}",
    parallelism="${AIRFLOW_PARALLELISM:-8}",
)

# The keys of docker-compose.yml's common environment that are not Airflow's shape but the container
# deployment's own: its secrets, its login (the FAB auth manager of the official image) and its paths.
COMPOSE_ONLY = frozenset(
    {
        "AIRFLOW__CORE__AUTH_MANAGER",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "B2B_HOME",
        "B2B_SOURCE_DIR",
        "B2B_PROJECT_DIR",
        # the deployment's settings, passed on from .env (docs/settings.md)
        "B2B_REPORTING_CURRENCY",
        "B2B_FX_BASE_CURRENCY",
        "B2B_REPORTING_TIMEZONE",
        "B2B_SALES_PIPELINES",
        "B2B_CRM_SOURCE",
        "B2B_BILLING_SOURCE",
    }
)


def result_backend(metadata_db: str) -> str:
    """Celery's result backend: the metadata database, in Celery's `db+` form with the same driver."""
    scheme, sep, rest = metadata_db.partition("://")
    return f"db+{scheme.split('+')[0]}{sep}{rest}"


def celery_environment(deployment: Deployment) -> dict[str, str]:
    """The environment every Airflow component of the production shape gets (scheduler, DAG processor,
    API server, triggerer, Celery workers)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
        "AIRFLOW__CORE__DAGS_FOLDER": deployment.dags_folder,
        "AIRFLOW__CORE__PLUGINS_FOLDER": deployment.plugins_folder,
        "AIRFLOW__CORE__PARALLELISM": deployment.parallelism,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": deployment.worker_concurrency,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": deployment.metadata_db,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend(deployment.metadata_db),
        "AIRFLOW__CELERY__BROKER_URL": deployment.broker_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": deployment.execution_api_url,
        # a worker lost with its task (a crash, a killed container) is noticed after 2 minutes rather than
        # Airflow's 5; a task with retries left (the extracts, the dbt build) then runs on another worker
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "120",
        # the scheduler's health endpoint (:8974/health), for the compose healthcheck and a load balancer
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
        **PIPELINE_SETTINGS,
        # the analytics warehouse: the Airflow connection `b2b_warehouse`, and the same server as a URL for
        # the b2b_pipeline code that runs outside a task (the CLI in a container)
        "AIRFLOW_CONN_B2B_WAREHOUSE": deployment.warehouse_dsn,
        "B2B_WAREHOUSE_DSN": deployment.warehouse_dsn,
    }
