"""Writing the files others read (reports, gate results): whole or not at all."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

READABLE = 0o644  # reports are read by the web server, the Airflow plugin and other users
OPEN_FOLDER = 0o755  # the bits a folder of reports needs for the same readers


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


def open_folder(folder: Path) -> None:
    """Make `folder` readable and searchable by all (adds `OPEN_FOLDER`'s bits, whatever the umask made it),
    keeping the bits it has (a shared folder's group write or setgid); another user's folder that lacks them
    is left as it is, with a warning."""
    mode = folder.stat().st_mode & 0o7777
    if mode | OPEN_FOLDER == mode:
        return
    try:
        os.chmod(folder, mode | OPEN_FOLDER)
    except PermissionError:  # another user's folder: theirs to open up
        log.warning("cannot make %s readable by all (mode %o)", folder, mode)
