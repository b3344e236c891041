"""The canonical stages of the sales cycle, as the dbt seed `canonical_stages.csv` defines them.

The seed is the one place the stages are spelled: the file-drop rules, the report's tables and
charts read them from here, and dbt loads the same file into `core.dim_stages`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import overload

from b2b_pipeline.config import dbt_project_dir

SEED = "seeds/canonical_stages.csv"


@dataclass(frozen=True)
class Stage:
    key: str
    order: int | None  # 1..7 along the cycle; None for `lost`, which is not a step of it
    name: str
    meaning: str


def canonical_stages() -> tuple[Stage, ...]:
    """Every canonical stage of the seed, the ordered ones in their order, then the unordered (`lost`)."""
    return _read(dbt_project_dir() / SEED)


@cache
def _read(path: Path) -> tuple[Stage, ...]:
    if not path.is_file():
        raise FileNotFoundError(
            f"the canonical stages are read from the dbt project's seed {path}, which does not exist "
            "(is B2B_PROJECT_DIR or B2B_DBT_PROJECT_DIR right?)"
        )
    with path.open(encoding="utf-8", newline="") as f:
        stages = [
            Stage(
                key=row["stage_key"],
                order=int(row["stage_order"]) if row["stage_order"] else None,
                name=row["stage_name"],
                meaning=row["meaning"],
            )
            for row in csv.DictReader(f)
        ]
    if not stages:
        raise ValueError(f"{path}: no canonical stages")
    return tuple(sorted(stages, key=lambda s: (s.order is None, s.order or 0)))


def cycle_stage_keys() -> tuple[str, ...]:
    """The keys of the ordered stages, lead to post_sale: the steps of the funnel."""
    return tuple(s.key for s in canonical_stages() if s.order is not None)


def stage_labels() -> dict[str, str]:
    """Each stage's display name by its key."""
    return {s.key: s.name for s in canonical_stages()}


class StageKeys(Sequence[str]):
    """The stage keys of the seed as a sequence read when first used, not when a module that names
    it is imported: the file-drop rules name the stages, and `b2b --help` must not need the seed.
    `ordered_only`: the cycle's stages only (no `lost`)."""

    def __init__(self, *, ordered_only: bool) -> None:
        self.ordered_only = ordered_only

    def _keys(self) -> tuple[str, ...]:
        return cycle_stage_keys() if self.ordered_only else tuple(s.key for s in canonical_stages())

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._keys()[index]

    def __len__(self) -> int:
        return len(self._keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __repr__(self) -> str:
        return f"StageKeys(ordered_only={self.ordered_only})"
