"""Where the project keeps its state, read from the environment.

`B2B_HOME` (default `./.b2b`) holds everything stateful: the embedded
warehouse's data directory, Airflow's home and metadata database, logs and
reports. Two homes never see each other. `B2B_WAREHOUSE_DSN`, when set, names
an existing PostgreSQL server to use instead of the embedded one.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "B2B_HOME"
DSN_ENV = "B2B_WAREHOUSE_DSN"
DEFAULT_HOME = ".b2b"


def b2b_home() -> Path:
    """The project's state directory (created when missing), as an absolute path."""
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def configured_dsn() -> str | None:
    """The warehouse URL of `B2B_WAREHOUSE_DSN`, or None when the embedded warehouse is wanted."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    return dsn or None
