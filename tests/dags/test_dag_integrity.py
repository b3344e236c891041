"""DAG integrity: the nightly DAG imports, has its schedule, tasks and order, and parses fast."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.config import dags_folder

DAG_ID = "b2b_sales_nightly"


@pytest.fixture(scope="module")
def dagbag(manifest: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dags_folder()))


def test_dags_import_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dag_ids


def test_schedule_is_a_nightly_data_interval(dagbag) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags[DAG_ID]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "0 4 * * *"
    assert str(dag.timetable.timezone) in ("UTC", "Timezone('UTC')")  # the default reporting_timezone
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert [f.__name__ for f in dag.default_args["on_failure_callback"]] == [
        "notify_failure",
        "release_night_on_failure",
    ]


@pytest.mark.parametrize(
    ("setting", "zone"), [("Europe/Moscow", "Europe/Moscow"), ("Europe/Moskow", "UTC")], ids=["moscow", "invalid"]
)
def test_the_schedule_follows_the_reporting_time_zone(
    manifest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str, zone: str
) -> None:
    """04:00 on the reporting time zone's clock; an invalid zone still loads the DAG (on UTC), and its
    first task then fails naming the value (tests/test_night.py)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("B2B_HOME", str(tmp_path))
    monkeypatch.setenv("B2B_REPORTING_TIMEZONE", setting)
    bag = DagBag(dag_folder=str(dags_folder()))
    assert bag.import_errors == {}
    timetable = bag.dags[DAG_ID].timetable
    assert timetable.expression == "0 4 * * *"
    assert zone in str(timetable.timezone)


def test_every_task_holds_the_night_lock(dagbag) -> None:
    """The night lock's hooks reach every task, cosmos's dbt tasks included; those also get the
    environment of the project's one dbt profile (`hold_night_for_dbt`)."""
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        expected = "hold_night_for_dbt" if hasattr(task, "profile_config") else "hold_night"
        assert task._pre_execute_hook.__name__ == expected, task.task_id
        # cosmos adds callbacks of its own to some tasks (the producer backs its XComs up on retry)
        assert "release_night_on_success" in [f.__name__ for f in task.on_success_callback], task.task_id
        assert "release_night_on_retry" in [f.__name__ for f in task.on_retry_callback], task.task_id
        assert "release_night_on_failure" in [f.__name__ for f in task.on_failure_callback], task.task_id


def test_tasks_and_their_order(dagbag) -> None:
    dag = dagbag.dags[DAG_ID]
    tasks = {t.task_id: t for t in dag.tasks}
    for task_id in (
        "resolve_night",
        "extract_crm",
        "extract_billing",
        "prepare_candidates",
        "quality_gate",
        "publish",
        "summary",
        "report",
    ):
        assert task_id in tasks
    dbt_tasks = [t for t in tasks if t.startswith("dbt.")]
    assert any("fct_deals" in t for t in dbt_tasks) and any("customer_value" in t for t in dbt_tasks)
    # extraction of CRM and billing runs in parallel, both before dbt
    assert tasks["extract_crm"].downstream_task_ids == {"prepare_candidates"}
    assert tasks["extract_billing"].downstream_task_ids == {"prepare_candidates"}
    assert tasks["extract_crm"].retries == 3 and tasks["extract_crm"].retry_exponential_backoff
    # every dbt task lies between prepare_candidates and the gate
    for task_id in dbt_tasks:
        assert "prepare_candidates" in tasks[task_id].get_flat_relative_ids(upstream=True)
        assert "quality_gate" in tasks[task_id].get_flat_relative_ids(upstream=False)
    assert tasks["quality_gate"].downstream_task_ids == {"publish"}
    assert tasks["publish"].downstream_task_ids == {"summary"}
    assert tasks["summary"].downstream_task_ids == {"report"}
    assert [o.name for o in tasks["publish"].outlets] == ["b2b_published_marts"]


def test_dbt_runs_once_in_a_producer_that_every_model_task_watches(dagbag) -> None:
    """Watcher mode: one `dbt build` (the producer) before every model's task, then one test task."""
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    dag = dagbag.dags[DAG_ID]
    tasks = {t.task_id: t for t in dag.tasks}
    producers = [t for t in tasks.values() if isinstance(t, DbtProducerWatcherOperator)]
    assert [p.task_id for p in producers] == ["dbt.dbt_producer_watcher"]
    producer = producers[0]
    assert producer.upstream_task_ids == {"prepare_candidates"}
    models = [t for t in tasks if t.startswith("dbt.") and t.endswith("_run")]
    assert len(models) >= 60
    for task_id in models:
        assert "dbt.dbt_producer_watcher" in tasks[task_id].get_flat_relative_ids(upstream=True), task_id
    # the producer builds models and the seed, the tests run once in their own task afterwards
    flags = producer.dbt_cmd_flags or []
    assert "--resource-type" in flags and "test" not in flags
    # and writes no debug log file into the temporary project copy cosmos deletes afterwards
    assert flags[flags.index("--log-level-file") + 1] == "none"
    assert tasks["dbt.dbt_project_test"].dbt_cmd_flags == ["--log-level-file", "none"]
    assert tasks["dbt.dbt_project_test"].downstream_task_ids == {"quality_gate"}
    # the test task leaves to the gate the key checks it runs itself (tests/quality/test_suites.py)
    assert tasks["dbt.dbt_project_test"].exclude == "tag:checked_by_gate"


def test_a_lost_dbt_build_is_retried(dagbag) -> None:
    """The producer is retried (a worker lost with it) and its retry builds again (tests/orchestration/
    test_dbt_watcher.py); the other tasks keep their own retries."""
    from b2b_pipeline.orchestration.dbt_watcher import PRODUCER_RETRIES, _BuildAgainOnRetry

    tasks = {t.task_id: t for t in dagbag.dags[DAG_ID].tasks}
    producer = tasks["dbt.dbt_producer_watcher"]
    assert isinstance(producer, _BuildAgainOnRetry)
    assert producer.retries == PRODUCER_RETRIES >= 1
    assert tasks["quality_gate"].retries == 0


def test_no_cycles(dagbag) -> None:
    dagbag.dags[DAG_ID].check_cycle()  # raises on a cycle


def test_parse_time_under_a_second(dagbag) -> None:
    """Parsing the DAG file (as the dag-processor and each worker do, Airflow already imported)."""
    from airflow.dag_processing.dagbag import DagBag

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(dags_folder() / "b2b_sales_nightly.py"))
        timings.append(time.perf_counter() - started)
        assert DAG_ID in bag.dag_ids
    assert min(timings) < 1.0, timings


def test_the_dag_file_touches_no_database_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing with an unreachable warehouse and no connection defined still works."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_B2B_WAREHOUSE", '{"conn_type": "postgres", "host": "127.0.0.1", "port": 1}')
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", "postgresql://nobody@127.0.0.1:1/none")
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(dags_folder() / "b2b_sales_nightly.py"))
    assert bag.import_errors == {} and time.perf_counter() - started < 5


def test_dbt_runs_with_the_projects_one_profile(dagbag) -> None:
    """cosmos runs dbt with `dbt_project/profiles.yml`, the profile `run_dbt` uses, and the night's vars."""
    from b2b_pipeline.config import dbt_project_dir
    from b2b_pipeline.transform.dbt_runner import night_settings_templates, night_vars

    dbt_tasks = [t for t in dagbag.dags[DAG_ID].tasks if hasattr(t, "profile_config")]
    assert dbt_tasks
    for task in dbt_tasks:
        assert Path(task.profile_config.profiles_yml_filepath) == dbt_project_dir() / "profiles.yml", task.task_id
        assert task.profile_config.profile_mapping is None, task.task_id
    producer = next(t for t in dbt_tasks if t.task_id.endswith("dbt_producer_watcher"))
    night = "ti.xcom_pull(task_ids='resolve_night')"
    assert producer.vars == night_vars("{{ " + night + "['as_of_date'] }}", settings=night_settings_templates(night))


def test_the_dbt_vars_render_the_settings_the_night_fixed() -> None:
    """The settings reach dbt as resolve_night fixed them (its XCom), rendered as Airflow renders the
    templates: text as is, the list of pipelines as JSON text (read back by the macro sales_pipelines_list)."""
    import jinja2

    from b2b_pipeline.night import Night
    from b2b_pipeline.transform.dbt_runner import night_settings_templates

    fixed = Night(
        date(2026, 11, 25),
        Path("/drop"),
        settings={
            "reporting_currency": "EUR",
            "fx_base_currency": "RUB",
            "reporting_timezone": "Europe/Moscow",
            "sales_pipelines": ["Sales, EU", "5521"],
            "crm_source": "amocrm",
            "billing_source": "files",
        },
    ).as_dict()

    class TaskInstance:
        def xcom_pull(self, task_ids: str) -> dict:
            assert task_ids == "resolve_night"
            return fixed

    rendered = {
        key: jinja2.Environment().from_string(template).render(ti=TaskInstance())
        for key, template in night_settings_templates("ti.xcom_pull(task_ids='resolve_night')").items()
    }
    assert rendered == {
        "reporting_currency": "EUR",
        "fx_base_currency": "RUB",
        "reporting_timezone": "Europe/Moscow",
        "sales_pipelines": '["Sales, EU", "5521"]',
        "crm_source": "amocrm",
        "billing_source": "files",
    }
