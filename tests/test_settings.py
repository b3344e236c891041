"""The settings module: each fact in one place, every B2B_* variable read and checked there."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from b2b_pipeline import config
from b2b_pipeline.stages import canonical_stages, cycle_stage_keys, stage_labels

REPO = Path(__file__).resolve().parents[1]


def test_the_reporting_currency_is_the_dbt_projects() -> None:
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    assert project["vars"]["reporting_currency"] == config.REPORTING_CURRENCY


def test_the_projects_folders_default_to_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in (config.PROJECT_DIR_ENV, config.DBT_PROJECT_DIR_ENV, config.EXPECTATIONS_DIR_ENV):
        monkeypatch.delenv(env, raising=False)
    assert config.project_root() == REPO
    assert config.dbt_project_dir() == REPO / "dbt_project"
    assert config.expectations_dir() == REPO / "expectations"
    assert config.dags_folder() == REPO / "dags"


def test_the_project_root_moves_every_folder_and_each_can_move_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(config.PROJECT_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(config.DBT_PROJECT_DIR_ENV, raising=False)
    assert config.dbt_project_dir() == tmp_path / "dbt_project"
    assert config.dags_folder() == tmp_path / "dags"
    monkeypatch.setenv(config.EXPECTATIONS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert config.expectations_dir() == tmp_path / "elsewhere"


def test_reports_live_under_the_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path))
    assert config.reports_dir() == tmp_path / "reports"
    assert config.reports_dir(tmp_path / "other") == tmp_path / "other" / "reports"


@pytest.mark.parametrize(("value", "expected"), [("", config.DEFAULT_DBT_THREADS), ("2", 2), ("16", 16)])
def test_dbt_threads(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv(config.DBT_THREADS_ENV, value)
    assert config.dbt_threads() == expected


@pytest.mark.parametrize("value", ["0", "-1", "four", "2.5"])
def test_a_bad_thread_count_names_its_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(config.DBT_THREADS_ENV, value)
    with pytest.raises(ValueError, match=config.DBT_THREADS_ENV):
        config.dbt_threads()


def test_the_stages_are_the_seeds() -> None:
    with (REPO / "dbt_project" / "seeds" / "canonical_stages.csv").open(encoding="utf-8", newline="") as f:
        seed = list(csv.DictReader(f))
    ordered = sorted((r for r in seed if r["stage_order"]), key=lambda r: int(r["stage_order"]))
    assert cycle_stage_keys() == tuple(r["stage_key"] for r in ordered)
    assert stage_labels() == {r["stage_key"]: r["stage_name"] for r in seed}
    assert [s.order for s in canonical_stages()] == [*range(1, len(ordered) + 1), None]


def test_the_cli_imports_without_the_dbt_project(tmp_path: Path) -> None:
    """The stages are read from the seed when first used: `b2b --help` works without the dbt project,
    and what needs the stages says where it looked."""
    code = (
        "import b2b_pipeline.cli\n"
        "from b2b_pipeline.stages import cycle_stage_keys\n"
        "try:\n    cycle_stage_keys()\nexcept FileNotFoundError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, config.DBT_PROJECT_DIR_ENV: str(tmp_path / "missing")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "missing" / "seeds" / "canonical_stages.csv") in done.stdout
    assert "B2B_DBT_PROJECT_DIR" in done.stdout


def test_dbt_threads_default_is_the_profiles() -> None:
    profile = (REPO / "dbt_project" / "profiles.yml").read_text(encoding="utf-8")
    assert f"env_var('{config.DBT_THREADS_ENV}', '{config.DEFAULT_DBT_THREADS}')" in profile


# ------------------------------------------------------------------------------------------------
# the deployment's settings file (b2b.yml) and its environment overrides
# ------------------------------------------------------------------------------------------------

REPORTING_KEYS = ("reporting_currency", "fx_base_currency", "reporting_timezone", "sales_pipelines")


@pytest.fixture
def settings_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A B2B_HOME of its own, with no setting in the environment."""
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path))
    monkeypatch.delenv(config.SETTINGS_FILE_ENV, raising=False)
    for key in config.SETTING_KEYS:
        monkeypatch.delenv(key.env, raising=False)
    return tmp_path


def test_the_settings_defaults_are_the_dbt_projects(settings_home: Path) -> None:
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    assert config.reporting_settings() == {key: project["vars"][key] for key in REPORTING_KEYS}
    assert {s.key: (s.value, s.origin) for s in config.effective_settings()} == {
        key.key: (key.default, "default") for key in config.SETTING_KEYS
    }


def test_the_file_sets_and_the_environment_overrides(settings_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = settings_home / "b2b.yml"
    path.write_text(
        "reporting_currency: eur\nreporting_timezone: Europe/Moscow\nsales_pipelines: [sales, 5521]\n",
        encoding="utf-8",
    )
    assert config.reporting_settings() == {
        "reporting_currency": "EUR",
        "fx_base_currency": "RUB",
        "reporting_timezone": "Europe/Moscow",
        "sales_pipelines": ["sales", "5521"],
    }
    monkeypatch.setenv("B2B_REPORTING_CURRENCY", "usd")
    monkeypatch.setenv("B2B_SALES_PIPELINES", "all")
    shown = {s.key: (s.value, s.origin) for s in config.effective_settings()}
    assert shown["reporting_currency"] == ("USD", "environment B2B_REPORTING_CURRENCY")
    assert shown["reporting_timezone"] == ("Europe/Moscow", str(path))
    assert shown["sales_pipelines"] == ("all", "environment B2B_SALES_PIPELINES")
    assert shown["fx_base_currency"] == ("RUB", "default")
    assert config.sales_pipelines() == ()


def test_the_settings_file_can_live_elsewhere(settings_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = settings_home / "etc" / "b2b.yml"
    monkeypatch.setenv(config.SETTINGS_FILE_ENV, str(elsewhere))
    with pytest.raises(ValueError, match="no such file"):
        config.reporting_currency()
    elsewhere.parent.mkdir()
    elsewhere.write_text("crm_source: amocrm\n", encoding="utf-8")
    assert config.crm_source() == "amocrm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reporting_currency: euro\n", r"b2b.yml: reporting_currency='EURO': expected an ISO 4217 code"),
        ("fx_base_currency: R1B\n", r"fx_base_currency='R1B'"),
        ("reporting_timezone: Mars/Olympus\n", r"reporting_timezone='Mars/Olympus': not an IANA time zone"),
        ("sales_pipelines: ' , '\n", r"sales_pipelines is empty"),
        (
            "crm_source: salesforce\n",
            r"b2b.yml: crm_source='salesforce': expected one of files, amocrm, bitrix24, hubspot",
        ),
        ("currency: EUR\n", r"unknown setting currency; the settings are reporting_currency"),
        ("reporting_timezone:\n", r"reporting_timezone needs a value"),
        ("reporting_currency: EUR\nreporting_timezone: [\n", r"b2b.yml, line 3: not valid YAML"),
        ("- EUR\n", r"expected a mapping of settings"),
    ],
)
def test_a_bad_settings_file_names_the_file_and_the_key(settings_home: Path, text: str, message: str) -> None:
    (settings_home / "b2b.yml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        config.effective_settings()


def test_a_bad_variable_names_the_variable(settings_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_REPORTING_TIMEZONE", "Moscow")
    with pytest.raises(ValueError, match="environment B2B_REPORTING_TIMEZONE: reporting_timezone='Moscow'"):
        config.reporting_timezone()


def test_the_night_passes_the_settings_to_dbt(settings_home: Path) -> None:
    from b2b_pipeline.transform.dbt_runner import night_vars

    (settings_home / "b2b.yml").write_text(
        "reporting_currency: EUR\nreporting_timezone: Asia/Tokyo\nsales_pipelines: sales, renewals\n", encoding="utf-8"
    )
    found = night_vars("2026-11-30")
    assert {key: found[key] for key in REPORTING_KEYS} == {
        "reporting_currency": "EUR",
        "fx_base_currency": "RUB",
        "reporting_timezone": "Asia/Tokyo",
        "sales_pipelines": ["sales", "renewals"],
    }


def test_config_show_prints_each_setting_and_its_origin(settings_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from b2b_pipeline.cli import app

    (settings_home / "b2b.yml").write_text("reporting_timezone: Europe/Moscow\n", encoding="utf-8")
    capfd.readouterr()
    result = CliRunner().invoke(app, ["config", "show"], env={"B2B_REPORTING_CURRENCY": "EUR", "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    output = result.output + capfd.readouterr().out  # the CLI's consoles write to the process's own stdout
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") > 2}
    assert "EUR" in lines["reporting_currency"] and "environment B2B_REPORTING_CURRENCY" in lines["reporting_currency"]
    assert "Europe/Moscow" in lines["reporting_timezone"] and "│ b2b.yml " in lines["reporting_timezone"]
    assert f"Settings file: {settings_home / 'b2b.yml'}" in output
    assert "default" in lines["fx_base_currency"] and "all" in lines["sales_pipelines"]
    capfd.readouterr()
    bad = CliRunner().invoke(app, ["config", "show"], env={"B2B_REPORTING_CURRENCY": "euros"})
    assert bad.exit_code == 1
    # the CLI's consoles write to the process's own stderr
    assert "environment B2B_REPORTING_CURRENCY: reporting_currency='EUROS'" in capfd.readouterr().err


def test_values_are_read_as_written(settings_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """YAML 1.1 would read `off` as false and `0123` as 83: every value is the text written, and a list
    keeps an id with a comma whole (a Bitrix24 funnel's name is its pipeline id)."""
    (settings_home / "b2b.yml").write_text(
        "source_freshness: off\nsales_pipelines: [0123, 1_000, 'Sales, EU', on]\n", encoding="utf-8"
    )
    assert config.source_freshness_mode() == "off"
    assert config.sales_pipelines() == ("0123", "1_000", "Sales, EU", "on")
    assert config.reporting_settings()["sales_pipelines"] == ["0123", "1_000", "Sales, EU", "on"]
    monkeypatch.setenv("B2B_SALES_PIPELINES", "['Sales, EU', Renewals]")  # a variable takes a YAML list too
    assert config.sales_pipelines() == ("Sales, EU", "Renewals")
    monkeypatch.setenv("B2B_SALES_PIPELINES", "Sales, Renewals")  # or comma-separated ids
    assert config.sales_pipelines() == ("Sales", "Renewals")
