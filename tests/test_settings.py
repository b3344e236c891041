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
