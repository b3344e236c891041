"""Finding the files of a drop, in the order docs/sources.md loads them.

A drop root holds `crm/` and `billing/`; each entity is a file named after it,
`<entity>.csv` or `<entity>.jsonl`, optionally `.gz`, directly in the system's
folder or in a dated subfolder `YYYY-MM-DD/`. Files directly in a system folder
come first, then the dated subfolders in date order.

Every file read lies inside the drop folder: a symbolic link (a file, a dated
folder, or `crm/`/`billing/` itself) that leads out of it is not followed but
listed among the paths refused, with its target, unless
`B2B_DROP_ALLOW_EXTERNAL_LINKS` allows such links; a dangling link or a link loop
is refused too. Links that stay inside the drop are followed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from b2b_pipeline.config import ALLOW_EXTERNAL_LINKS_ENV, drop_allow_external_links
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


def discover(root: Path, *, allow_external_links: bool | None = None) -> Discovery:
    """The files under `root` in load order. Raises FileNotFoundError when `root` has no crm/ or billing/.

    `allow_external_links`: follow symbolic links that lead out of `root` (default: the
    setting `B2B_DROP_ALLOW_EXTERNAL_LINKS`); otherwise each is listed as ignored, with why.
    """
    root = root.resolve()
    if allow_external_links is None:
        allow_external_links = drop_allow_external_links()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    systems = [s for s in SYSTEMS if (root / s).is_dir() or (root / s).is_symlink()]
    if not systems:
        raise FileNotFoundError(f"{root}: not a file drop (it has neither crm/ nor billing/)")
    files: list[DropFile] = []
    ignored: list[tuple[str, str]] = []

    def refused_link(path: Path) -> bool:
        why = link_problem(root, path, allow_external_links)
        if why:
            ignored.append((path.relative_to(root).as_posix(), why))
        return why is not None

    for system in systems:
        if refused_link(root / system):
            continue
        if not (root / system).is_dir():
            ignored.append((system, "not a folder"))
            continue
        for entry in sorted((root / system).iterdir()):
            if entry.name.startswith(".") or refused_link(entry):
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
                    if sub.name.startswith(".") or refused_link(sub):
                        continue
                    if sub.is_dir():
                        ignored.append((sub.relative_to(root).as_posix(), "a folder inside a dated subfolder"))
                        continue
                    files.append(_drop_file(root, sub, system, folder_date))
            else:
                files.append(_drop_file(root, entry, system, None))
    files.sort(key=lambda f: f.order_key)
    return Discovery(files=files, ignored=ignored)


def link_problem(root: Path, path: Path, allow_external: bool) -> str | None:
    """Why the entry `path` of the drop at `root` (resolved) is not to be read as a symbolic link;
    None when it is no link, or a link that stays inside the drop (or `allow_external`).

    Only a link needs a look: a plain entry of a folder that lies inside the drop lies inside
    it too, and the walk checks every folder on the way down before it lists its entries.
    """
    if not path.is_symlink():
        return None
    rel = path.relative_to(root).as_posix()
    try:
        target = os.readlink(path)
    except OSError as exc:
        return f"{rel}: a symbolic link that cannot be read ({exc.strerror})"
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        return f"{rel}: a dangling symbolic link (to {target}, which does not exist)"
    except RuntimeError:  # Python 3.11/3.12 report a loop so
        return f"{rel}: a symbolic link loop (to {target}, which leads back to itself)"
    except OSError as exc:  # ELOOP (a loop, as newer Pythons report it) or no access
        return f"{rel}: a symbolic link that cannot be followed (to {target}: {exc.strerror or exc})"
    if allow_external or real == root or real.is_relative_to(root):
        return None
    return (
        f"{rel} is a symbolic link to {real}, outside the drop folder {root}: not read "
        f"({ALLOW_EXTERNAL_LINKS_ENV}=true allows links out of the drop)"
    )


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
