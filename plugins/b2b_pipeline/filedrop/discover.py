"""Finding the files of a drop, in the order SOURCES.md loads them.

A drop root holds `crm/` and `billing/`; each entity is a file named after it,
`<entity>.csv` or `<entity>.jsonl`, optionally `.gz`, directly in the system's
folder or in a dated subfolder `YYYY-MM-DD/`. Files directly in a system folder
come first, then the dated subfolders in date order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from b2b_pipeline.filedrop.spec import ENTITY_BY_NAME, SYSTEMS, Entity

DATED_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class DropFile:
    """One file of a drop, with what its name says about it."""

    path: Path
    relpath: str  # posix path relative to the drop root, e.g. "crm/2026-11-26/deals.csv"
    system: str
    folder_date: date | None
    entity: Entity | None  # None: the name is no entity of the system
    fmt: str | None  # "csv", "jsonl", or None when the extension is neither
    compressed: bool

    @property
    def problem(self) -> str | None:
        """Why the file cannot be read as an entity at all, judging by its name; None when it can."""
        if self.fmt is None:
            return "not a CSV or JSON Lines file (expected <entity>.csv, .jsonl, .csv.gz or .jsonl.gz)"
        if self.entity is None:
            known = ", ".join(sorted(n for (s, n) in ENTITY_BY_NAME if s == self.system))
            return f"unknown entity for {self.system}/ (known: {known})"
        return None

    @property
    def order_key(self) -> tuple[date, int, str]:
        return (self.folder_date or date.min, SYSTEMS.index(self.system), self.relpath)


@dataclass(frozen=True)
class Discovery:
    """The files of a drop in load order, and the paths that are not files of the format."""

    files: list[DropFile]
    ignored: list[tuple[str, str]]  # (relpath, why)


def parse_name(name: str) -> tuple[str, str | None, bool]:
    """Split `deals.csv.gz` into ("deals", "csv", True); the format is None for other extensions."""
    compressed = name.endswith(".gz")
    base = name[:-3] if compressed else name
    stem, dot, ext = base.rpartition(".")
    if not dot:
        return base, None, compressed
    return stem, FORMATS.get("." + ext.lower()), compressed


def discover(root: Path) -> Discovery:
    """The files under `root` in load order. Raises FileNotFoundError when `root` has no crm/ or billing/."""
    root = root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    systems = [s for s in SYSTEMS if (root / s).is_dir()]
    if not systems:
        raise FileNotFoundError(f"{root}: not a file drop (it has neither crm/ nor billing/)")
    files: list[DropFile] = []
    ignored: list[tuple[str, str]] = []
    for system in systems:
        for entry in sorted((root / system).iterdir()):
            if entry.name.startswith("."):
                continue
            rel = entry.relative_to(root).as_posix()
            if entry.is_dir():
                if not DATED_FOLDER.match(entry.name):
                    ignored.append((rel, "a subfolder whose name is not a date YYYY-MM-DD"))
                    continue
                try:
                    folder_date = date.fromisoformat(entry.name)
                except ValueError:
                    ignored.append((rel, "a subfolder whose name is not a valid date"))
                    continue
                for sub in sorted(entry.iterdir()):
                    if sub.name.startswith("."):
                        continue
                    if sub.is_dir():
                        ignored.append((sub.relative_to(root).as_posix(), "a folder inside a dated subfolder"))
                        continue
                    files.append(_drop_file(root, sub, system, folder_date))
            else:
                files.append(_drop_file(root, entry, system, None))
    files.sort(key=lambda f: f.order_key)
    return Discovery(files=files, ignored=ignored)


def _drop_file(root: Path, path: Path, system: str, folder_date: date | None) -> DropFile:
    stem, fmt, compressed = parse_name(path.name)
    return DropFile(
        path=path,
        relpath=path.relative_to(root).as_posix(),
        system=system,
        folder_date=folder_date,
        entity=ENTITY_BY_NAME.get((system, stem)),
        fmt=fmt,
        compressed=compressed,
    )
