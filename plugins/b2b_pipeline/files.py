"""Writing the files others read (reports, gate results): whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

READABLE = 0o644  # reports are read by the web server, the Airflow plugin and other users


def write_atomically(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file renamed over it, so that a reader sees
    the old file or the new one, never half of one. Creates the folder; the file is readable by all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, READABLE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
