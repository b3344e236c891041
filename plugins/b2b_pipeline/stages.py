"""The canonical stages of the sales cycle, as the dbt seed `canonical_stages.csv` defines them.

The seed is the one place the stages are spelled: the file-drop rules, the report's tables and
charts read them from here, and dbt loads the same file into `core.dim_stages`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

from b2b_pipeline.config import dbt_project_dir

SEED = "seeds/canonical_stages.csv"


@dataclass(frozen=True)
class Stage:
    key: str
    order: int | None  # 1..7 along the cycle; None for `lost`, which is not a step of it
    name: str
    meaning: str


@cache
def canonical_stages() -> tuple[Stage, ...]:
    """Every canonical stage of the seed, the ordered ones in their order, then the unordered (`lost`)."""
    path = dbt_project_dir() / SEED
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
