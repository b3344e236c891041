"""b2b_sales_nightly: extract CRM and billing, build the star schema and marts, gate, publish.

Wiring only: every task calls a function of the `b2b_pipeline` package, and the dbt
task group is rendered by cosmos from the compiled manifest (no dbt at parse time).
Nothing here touches a database or the network when the file is parsed. The schedule runs at
04:00 on the reporting time zone's clock (the setting `reporting_timezone`, read from b2b.yml or
B2B_REPORTING_TIMEZONE), when the as-of day is over there, clear of the hours daylight saving
skips or repeats.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from b2b_pipeline.config import dbt_project_dir
from b2b_pipeline.night import schedule_timezone
from b2b_pipeline.orchestration.callbacks import notify_failure
from b2b_pipeline.orchestration.dbt_watcher import run_producer_first
from b2b_pipeline.orchestration.task_guard import (
    hold_night,
    hold_night_for_dbt,
    release_night_on_failure,
    release_night_on_retry,
    release_night_on_success,
)
from b2b_pipeline.transform.dbt_runner import GATE_CHECKED_TESTS, night_settings_templates, night_vars
from b2b_pipeline.transform.manifest import dbt_manifest_path

PUBLISHED_MARTS = Asset(name="b2b_published_marts", uri="b2b://warehouse/marts")
NIGHT = "ti.xcom_pull(task_ids='resolve_night')"


@dag(
    dag_id="b2b_sales_nightly",
    schedule=CronDataIntervalTimetable("0 4 * * *", timezone=schedule_timezone()),
    start_date=pendulum.datetime(2026, 1, 1, tz=schedule_timezone()),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    tags=["b2b", "nightly"],
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        "retries": 0,
        # every task, cosmos's included, holds the warehouse's night lock while it runs
        # (one night at a time per warehouse); the lease ends with the last task or a final failure
        "pre_execute": hold_night,
        "on_success_callback": release_night_on_success,
        "on_retry_callback": release_night_on_retry,
        "on_failure_callback": [notify_failure, release_night_on_failure],
    },
)
def b2b_sales_nightly() -> None:
    @task
    def resolve_night() -> dict:
        """Name the night: its as-of date and drop folder (conf, else data interval and B2B_SOURCE_DIR),
        and fix its settings (b2b.yml or B2B_* variables) for every later task."""
        from b2b_pipeline.night import resolve_night as resolve

        context = get_current_context()
        return resolve(context["dag_run"].conf, context.get("data_interval_end")).as_dict()

    @task(retries=3, retry_delay=timedelta(seconds=30), retry_exponential_backoff=True)
    def extract(system: str, night: dict[str, str]) -> dict:
        """Land the night's records of one source system: the drop's new files, or the changes of the
        configured API source (B2B_CRM_SOURCE) through its connection."""
        from b2b_pipeline.night import Night
        from b2b_pipeline.nightly import extract as extract_system
        from b2b_pipeline.orchestration.source_connection import api_connection
        from b2b_pipeline.orchestration.task_guard import permanent_failures_not_retried
        from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook

        # a wrong login, a missing database or drop folder fail at once: retries are for what heals
        with permanent_failures_not_retried():
            connection = api_connection(system)
            return extract_system(WarehouseHook().get_dsn(), Night.from_dict(night), system, connection)

    @task
    def prepare_candidates() -> None:
        """Drop leftover candidate schemas so that tonight's dbt build starts clean."""
        from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook
        from b2b_pipeline.publish import prepare_candidates as prepare

        prepare(WarehouseHook().get_dsn())

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=dbt_project_dir(),
            manifest_path=dbt_manifest_path(),
            project_name="b2b_pipeline",
            install_dbt_deps=False,
        ),
        # the project's one profile; it reads the B2B_PG_* variables that hold_night_for_dbt sets
        # from the warehouse connection as each dbt task starts
        profile_config=ProfileConfig(
            profile_name="b2b_pipeline",
            target_name="warehouse",
            profiles_yml_filepath=dbt_project_dir() / "profiles.yml",
        ),
        # one `dbt build` of every model in a producer task; each model's task watches it and
        # ends as its model did (a dbt invocation costs about 2 s, and there are 62 models)
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # then the project's dbt tests in one task; the quality gate after it is the authority
            # on the data, and the tests it runs itself (the core keys) are left to it
            test_behavior=TestBehavior.AFTER_ALL,
            exclude=[GATE_CHECKED_TESTS],
            emit_datasets=False,
        ),
        operator_args={
            "pre_execute": hold_night_for_dbt,
            # no debug log file: cosmos runs dbt in a temporary copy of the project and deletes
            # it, log file and all, when the task ends (the task log keeps dbt's info lines)
            "dbt_cmd_flags": ["--log-level-file", "none"],
            # the night's as-of date and settings as its first task fixed them (resolve_night)
            "vars": night_vars("{{ " + NIGHT + "['as_of_date'] }}", settings=night_settings_templates(NIGHT)),
        },
    )

    @task
    def quality_gate(night: dict[str, str]) -> dict:
        """Validate the candidate schemas with the Great Expectations suites; fail the run when blocked."""
        from b2b_pipeline.night import Night
        from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook
        from b2b_pipeline.quality.gate import enforce_gate

        return enforce_gate(WarehouseHook().get_dsn(), Night.from_dict(night))

    @task(outlets=[PUBLISHED_MARTS])
    def publish() -> dict:
        """Swap the validated candidates in as core and marts, atomically, with bi_reader's grants."""
        from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook
        from b2b_pipeline.publish import publish as swap

        result = swap(WarehouseHook().get_dsn())
        return {"schemas": list(result.schemas), "tables": result.tables, "cancelled_readers": list(result.cancelled)}

    @task
    def summary(night: dict[str, str]) -> dict:
        """The night's headline metrics from the published marts."""
        from b2b_pipeline.night import Night
        from b2b_pipeline.nightly import headline_metrics
        from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook

        return headline_metrics(WarehouseHook().get_dsn(), Night.from_dict(night).as_of)

    @task
    def report(night: dict[str, str]) -> str | None:
        """The nightly HTML report (and the dbt docs when the project changed); never fails the night."""
        from b2b_pipeline.night import Night
        from b2b_pipeline.nightly import publish_report
        from b2b_pipeline.orchestration.warehouse_hook import WarehouseHook

        return publish_report(WarehouseHook().get_dsn(), Night.from_dict(night).as_of)

    night = resolve_night()
    loads = [extract.override(task_id=f"extract_{system}")(system, night) for system in ("crm", "billing")]
    prepared = prepare_candidates()
    gate = quality_gate(night)
    run_producer_first(dbt)
    loads >> prepared >> dbt >> gate >> publish() >> summary(night) >> report(night)


b2b_sales_nightly()
