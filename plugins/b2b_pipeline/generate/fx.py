"""Daily exchange rates of USD and EUR in RUB (the demo's base currency): a mean-reverting random walk."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import date, timedelta

# currency -> (level the walk reverts to, starting level)
_ANCHORS = {"USD": (90.0, 89.5), "EUR": (100.0, 97.8)}
DAILY_VOLATILITY = 0.006  # standard deviation of the daily log-change
REVERSION = 0.01  # share of the gap to the anchor closed each day
WEEKEND_PUBLISHED = 0.4  # a Saturday or Sunday rate exists this often; otherwise it is missing


def daily_rates(seed: int, start: date, end: date) -> Iterator[tuple[date, str, str]]:
    """(rate_date, currency, rate as text with 4 decimals), date by date from `start` to `end`.

    Weekdays always have a rate; a weekend day only sometimes (downstream then takes the
    latest earlier rate). `start` always has one, so every event has a rate on or before it.
    """
    rng = random.Random(f"{seed}:fx")
    level = {c: start_level for c, (_, start_level) in _ANCHORS.items()}
    d = start
    while d <= end:
        for cur, (anchor, _) in _ANCHORS.items():
            log_gap = math.log(anchor / level[cur])
            level[cur] *= math.exp(REVERSION * log_gap + rng.gauss(0.0, DAILY_VOLATILITY))
        published = d == start or d.weekday() < 5 or rng.random() < WEEKEND_PUBLISHED
        if published:
            for cur in _ANCHORS:
                yield d, cur, f"{level[cur]:.4f}"
        d += timedelta(days=1)
