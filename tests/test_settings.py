"""The settings module: each fact in one place, every B2B_* variable read and checked there."""

from __future__ import annotations

import csv
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
