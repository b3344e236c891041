"""The report server (FastAPI) and the Airflow plugin that mounts it; no database, no Airflow server."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from b2b_pipeline.reporting.report_app import URL_PREFIX, create_app

PLUGIN_FILE = Path(__file__).resolve().parents[2] / "plugins" / "b2b_airflow_report_plugin.py"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    (root / "latest").mkdir(parents=True)
    (root / "2026-11-25").mkdir()
    (root / "dbt_docs").mkdir()
    (root / "latest" / "index.html").write_text("<html>latest report</html>", encoding="utf-8")
    (root / "2026-11-25" / "quality.html").write_text("<html>quality</html>", encoding="utf-8")
    (root / "2026-11-25" / "gate.json").write_text('{"passed": true}', encoding="utf-8")
    (root / "dbt_docs" / "static_index.html").write_text("<html>docs</html>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside", encoding="utf-8")
    return root


def test_app_serves_the_reports_folder(reports: Path) -> None:
    client = TestClient(create_app(reports, require_login=False))
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "latest/"
    latest = client.get("/latest/")
    assert latest.status_code == 200 and "latest report" in latest.text
    assert latest.headers["content-type"].startswith("text/html")
    assert client.get("/latest", follow_redirects=False).headers["location"] == "latest/"
    assert "quality" in client.get("/2026-11-25/quality.html").text
    assert client.get("/2026-11-25/gate.json").json() == {"passed": True}
    assert "docs" in client.get("/dbt_docs/static_index.html").text
    assert client.get("/nope.html").status_code == 404
    # nothing outside reports/
    assert client.get("/../secret.txt").status_code == 404
    assert client.get("/%2e%2e/secret.txt").status_code == 404
    assert client.get("/latest/..%2F..%2Fsecret.txt").status_code == 404


def test_app_without_a_report_yet(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "reports", require_login=False))
    response = client.get("/latest/")
    assert response.status_code == 404 and "No sales report yet" in response.text


def test_app_reads_b2b_home_per_request(reports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_HOME", str(reports.parent))
    client = TestClient(create_app(require_login=False))
    assert "latest report" in client.get("/latest/").text


def test_app_requires_an_airflow_user(reports: Path) -> None:
    client = TestClient(create_app(reports))
    assert client.get("/latest/").status_code == 401


def _load_plugin_module(path: Path) -> object:
    spec = importlib.util.spec_from_file_location("b2b_airflow_report_plugin_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_is_an_airflow3_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse
    from airflow.plugins_manager import AirflowPlugin

    # importing touches neither the warehouse nor B2B_HOME
    home = tmp_path / "no-such-home"
    monkeypatch.setenv("B2B_HOME", str(home))
    monkeypatch.setenv("B2B_WAREHOUSE_DSN", "postgresql://nobody@127.0.0.1:1/nothing")
    module = _load_plugin_module(PLUGIN_FILE)
    assert not home.exists()

    plugin = module.B2BReportPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "b2b_report"
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == URL_PREFIX == "/b2b-report"
    assert not any(app["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    (view,) = plugin.external_views
    parsed = ExternalViewResponse(**view)
    assert parsed.name == "B2B sales report" and parsed.destination == "nav"
    assert parsed.href == "b2b-report/" and not parsed.href.startswith("/")
    assert not plugin.appbuilder_views and not plugin.flask_blueprints


def test_airflow_loads_the_plugin_from_a_plugins_folder(tmp_path: Path) -> None:
    """Airflow's own loader finds exactly one plugin in the file, without import errors."""
    from airflow._shared.plugins_manager import _load_plugins_from_plugin_directory

    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy2(PLUGIN_FILE, folder / PLUGIN_FILE.name)
    try:
        plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=str(folder))
    finally:
        sys.modules.pop(PLUGIN_FILE.stem, None)
    assert errors == {}
    assert [p.name for p in plugins] == ["b2b_report"]
