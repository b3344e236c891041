"""Malformed rows on purpose (`error_rate`): the kinds of bad input docs/sources.md sends to quarantine."""

from __future__ import annotations

import random

from b2b_pipeline.filedrop.spec import Entity, Kind

BAD_NUMBERS = ("n/a", "12O0.50", "1 000,00,0", "—", "#VALUE!")
BAD_TIMESTAMPS = ("31.02.2025 25:61", "2025-13-45T10:00:00Z", "yesterday", "2025/02/30", "00:00")
BAD_VALUES = ("unknown", "pending_review", "WON!", "???")


def corruptions(entity: Entity) -> tuple[tuple[str, str], ...]:
    """Every (kind, column) way a row of `entity` can be broken."""
    out: list[tuple[str, str]] = []
    for c in entity.columns:
        if c.required:
            out.append(("missing", c.name))
        if c.kind in (Kind.NUMBER, Kind.INTEGER):
            out.append(("number", c.name))
        if c.kind in (Kind.TIMESTAMP, Kind.DATE) and c.required:
            out.append(("timestamp", c.name))
        if c.allowed:
            out.append(("allowed", c.name))
        if c.non_negative and c.kind is Kind.NUMBER and c.required:
            out.append(("negative", c.name))
    return tuple(out)


def corrupt(rng: random.Random, entity: Entity, row: dict[str, str]) -> dict[str, str]:
    """A copy of `row` broken in one way the loader must quarantine."""
    kind, column = rng.choice(corruptions(entity))
    bad = dict(row)
    if kind == "missing":
        bad[column] = ""
    elif kind == "number":
        bad[column] = rng.choice(BAD_NUMBERS)
    elif kind == "timestamp":
        bad[column] = rng.choice(BAD_TIMESTAMPS)
    elif kind == "allowed":
        bad[column] = rng.choice(BAD_VALUES)
    else:  # negative
        value = row.get(column, "") or "1"
        bad[column] = "-" + value.lstrip("-") if value.strip("0.") else "-1.00"
    return bad
