"""One deal's walk through the seven-stage B2B cycle: advances, skips, regressions, losses.

The walk is on canonical levels (lead 1 .. negotiation 5, closing 6 = won); each
level is entered through one of the pipeline's source stages. It runs past the
end of the simulated period if it must: what happens after the horizon is simply
not written, so a deal still moving at the end is open.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .catalog import CLOSING, EXPANSION, NEW_BUSINESS, Stage, stages_at
from .clock import DAY, at_work, later


@dataclass(frozen=True)
class FunnelParams:
    start_levels: tuple[tuple[int, float], ...]  # (level, probability) of the first entry
    loss: tuple[float, ...]  # chance to be lost at each visit of levels 1..5
    regress: float  # chance to go back at a visit of levels 3..5
    skip2: float  # chance that an advance jumps two levels
    skip3: float  # ... or three
    dwell_days: tuple[float, ...]  # median days spent at levels 1..5
    dwell_sigma: float = 0.75
    stall: float = 0.05  # chance that a deal stalls (one stage lasts 4-8 times longer)


PARAMS: dict[str, FunnelParams] = {
    NEW_BUSINESS: FunnelParams(
        start_levels=((1, 0.88), (2, 0.12)),
        loss=(0.3, 0.3, 0.22, 0.25, 0.25),
        regress=0.07,
        skip2=0.08,
        skip3=0.015,
        dwell_days=(7.0, 14.0, 20.0, 17.0, 20.0),
    ),
    EXPANSION: FunnelParams(
        start_levels=((1, 0.6), (2, 0.25), (3, 0.15)),
        loss=(0.2, 0.2, 0.16, 0.2, 0.2),
        regress=0.06,
        skip2=0.1,
        skip3=0.02,
        dwell_days=(4.0, 10.0, 13.0, 13.0, 14.0),
    ),
}
MAX_MOVES = 14  # a deal that has not closed after this many moves is lost


@dataclass
class DealPath:
    entries: list[tuple[int, Stage]] = field(default_factory=list)  # time order, first at creation
    outcome: str = "lost"  # "won" or "lost" (at the end of the walk, possibly after the horizon)
    closed_at: int = 0
    lost_level: int = 0  # the level a lost deal was lost at
    revisions: list[tuple[int, float]] = field(default_factory=list)  # (time, amount factor)


def _pick(rng: random.Random, pairs: tuple[tuple[int, float], ...]) -> int:
    x = rng.random()
    for value, p in pairs:
        if x < p:
            return value
        x -= p
    return pairs[-1][0]


def _dwell(rng: random.Random, p: FunnelParams, level: int, stalled: bool) -> int:
    days = p.dwell_days[level - 1] * math.exp(rng.gauss(0.0, p.dwell_sigma))
    if stalled:
        days *= rng.uniform(4.0, 8.0)
    return max(3600, int(days * DAY))


def walk(rng: random.Random, pipeline: str, created: int) -> DealPath:
    p = PARAMS[pipeline]
    path = DealPath()
    level = _pick(rng, p.start_levels)
    t = created
    path.entries.append((t, stages_at(pipeline, level)[0]))
    stall_at = rng.randint(1, 5) if rng.random() < p.stall else 0
    moves = 0
    while True:
        stay = _dwell(rng, p, level, stalled=(level == stall_at))
        substages = stages_at(pipeline, level)
        if len(substages) > 1 and path.entries[-1][1] is substages[0] and rng.random() < 0.6:
            # a second source stage of the same canonical stage (a demo after the first meeting)
            mid = later(rng, at_work(rng, t + stay // 2), t)
            path.entries.append((mid, substages[1]))
            t = mid
        t = later(rng, at_work(rng, t + stay), t)
        moves += 1
        u = rng.random()
        if u < p.loss[level - 1] or moves >= MAX_MOVES:
            path.entries.append((t, stages_at(pipeline, 0)[0]))
            path.outcome, path.closed_at, path.lost_level = "lost", t, level
            return path
        u -= p.loss[level - 1]
        if level >= 3 and u < p.regress:
            level -= 2 if (level >= 4 and rng.random() < 0.2) else 1
            path.entries.append((t, stages_at(pipeline, level)[-1]))
            continue
        r = rng.random()
        step = 3 if r < p.skip3 else (2 if r < p.skip3 + p.skip2 else 1)
        level = min(CLOSING, level + step)
        path.entries.append((t, stages_at(pipeline, level)[0]))
        if level == 4:
            path.revisions.append((t, rng.uniform(0.8, 1.3)))
        elif level == 5:
            path.revisions.append((t, rng.uniform(0.85, 1.0)))
        if level == CLOSING:
            path.outcome, path.closed_at = "won", t
            return path
