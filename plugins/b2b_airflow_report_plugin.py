"""Airflow plugin: the B2B sales report in the Airflow UI.

Airflow 3 plugins extend the API server with FastAPI apps (`fastapi_apps`) and the UI with links
(`external_views`); Flask-AppBuilder views are gone. This plugin mounts the report server of
`b2b_pipeline.reporting.report_app` at `/b2b-report` (`B2B_HOME/reports/`: `latest/` is the
latest night's sales report) and adds "B2B sales report" to the UI's Browse menu, shown inside
the UI (`url_route`: `/plugin/b2b-report`). Only signed-in Airflow users see it.

Importing this module touches no database and no file: `B2B_HOME` is read per request.
Keep this the only module that defines an `AirflowPlugin` subclass for the report: Airflow's
plugin loader imports every `.py` file under the plugins folder and registers each subclass it
finds, so a second definition would be reported as a duplicate plugin.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from b2b_pipeline.reporting.report_app import URL_PREFIX, create_app


class B2BReportPlugin(AirflowPlugin):
    name = "b2b_report"
    fastapi_apps = [  # noqa: RUF012 (Airflow's plugin interface: class attributes)
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "B2B sales report"},
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "B2B sales report",
            # relative (no leading slash): resolved against the UI's base URL
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "destination": "nav",
            "category": "browse",
            "url_route": URL_PREFIX.lstrip("/"),
        },
    ]
