"""A small FastAPI app that serves `B2B_HOME/reports/` (the sales report, quality reports, dbt docs).

The Airflow plugin (`plugins/b2b_airflow_report_plugin.py`) mounts it at `/b2b-report`:
`/b2b-report/` redirects to `latest/` (the latest night's report); every other path is a file
under `reports/` (`2026-11-25/quality.html`, `dbt_docs/static_index.html`, ...), with a folder
meaning its `index.html`. Nothing outside `reports/` is reachable.

`B2B_HOME` is read per request, so creating the app touches neither the file system nor a
database. Access requires a signed-in Airflow user (Airflow's own `get_user` dependency: the UI's
session cookie or a bearer token) unless the app is created with `require_login=False`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

URL_PREFIX = "/b2b-report"

NOT_BUILT = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>No report yet</title></head>
<body style="font:14px sans-serif;margin:24px"><h1>No sales report yet</h1>
<p>The report is built after a night publishes (the DAG's summary task), or by hand with
<code>b2b report</code>. Reports folder: <code>{folder}</code>.</p></body></html>
"""


def default_reports_dir() -> Path:
    from b2b_pipeline.config import reports_dir

    return reports_dir()


async def airflow_user(request: Request) -> Any:
    """The signed-in Airflow user (401/403 otherwise), resolved by Airflow's API server itself."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, oauth2_scheme

    return await get_user(request, await oauth2_scheme(request), await bearer_scheme(request))


def create_app(
    reports_dir: Callable[[], Path] | Path | None = None,
    *,
    require_login: bool = True,
) -> FastAPI:
    """The report server. `reports_dir` is the folder to serve, or a callable giving it per request."""

    def root() -> Path:
        if reports_dir is None:
            return default_reports_dir()
        return reports_dir() if callable(reports_dir) else Path(reports_dir)

    dependencies = [Depends(airflow_user)] if require_login else []
    app = FastAPI(
        title="B2B sales report",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=dependencies,
    )

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        # relative, so that it works behind any base URL or proxy prefix
        return RedirectResponse("latest/", status_code=307)

    @app.get("/{path:path}", include_in_schema=False)
    def serve(path: str) -> Any:
        base = root().resolve()
        target = (base / path).resolve()
        if target != base and base not in target.parents:
            raise HTTPException(status_code=404)
        if target.is_dir():
            if not path.endswith("/") and path:
                return RedirectResponse(f"{Path(path).name}/", status_code=307)
            target = target / "index.html"
        if not target.is_file():
            if path.rstrip("/") in ("latest", "latest/index.html"):
                return HTMLResponse(NOT_BUILT.format(folder=base), status_code=404)
            raise HTTPException(status_code=404)
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media_type, headers={"Cache-Control": "no-cache"})

    return app
