"""Files others read: written whole, folders opened up for their readers without closing what was open."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from b2b_pipeline.files import open_folder, write_atomically


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_folder_adds_the_readers_bits_and_keeps_the_others(tmp_path: Path) -> None:
    private, shared, open_ = tmp_path / "private", tmp_path / "shared", tmp_path / "open"
    for folder in (private, shared, open_):
        folder.mkdir()
    os.chmod(private, 0o700)  # as a umask of 077 makes it
    os.chmod(shared, 0o2770)  # a group's shared folder: group write and setgid stay
    os.chmod(open_, 0o755)
    for folder in (private, shared, open_):
        open_folder(folder)
    assert (mode(private), mode(shared), mode(open_)) == (0o755, 0o2775, 0o755)


def test_write_atomically_leaves_a_readable_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "a.html"
    previous = os.umask(0o077)
    try:
        write_atomically(target, "one")
        write_atomically(target, "two")
    finally:
        os.umask(previous)
    assert target.read_text(encoding="utf-8") == "two" and mode(target) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["a.html"]
