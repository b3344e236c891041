"""Time as integer seconds since the Unix epoch (UTC), and its ISO 8601 text.

The simulation keeps every instant as an `int` (fast to compare and to add to);
text is made only when a row is written. Business events happen in Moscow
office hours (UTC+3), mostly on weekdays.
"""

from __future__ import annotations

import calendar
import random
import time
from datetime import date, timedelta

DAY = 86_400
HOUR = 3_600
MINUTE = 60
MSK = 3 * HOUR  # Moscow is UTC+3 all year
_EPOCH = date(1970, 1, 1)

_DATE_TEXT: dict[int, str] = {}


def epoch_of(d: date) -> int:
    """00:00 UTC of day `d`."""
    return (d - _EPOCH).days * DAY


def date_of(t: int) -> date:
    """The UTC calendar date of instant `t`."""
    return _EPOCH + timedelta(days=t // DAY)


def date_text(t: int) -> str:
    """`YYYY-MM-DD` of the UTC day of `t`."""
    day = t // DAY
    text = _DATE_TEXT.get(day)
    if text is None:
        text = (_EPOCH + timedelta(days=day)).isoformat()
        if len(_DATE_TEXT) < 100_000:
            _DATE_TEXT[day] = text
    return text


def iso_z(t: int) -> str:
    """`2025-03-04T10:15:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def iso_naive(t: int) -> str:
    """`2025-03-04T10:15:00` (no offset: UTC by the contract)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def iso_msk(t: int) -> str:
    """`2025-03-05T00:10:00+03:00`: the same instant written in Moscow time."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+03:00", time.gmtime(t + MSK))


STYLES = ("z", "naive", "msk")
_FORMAT = {"z": iso_z, "naive": iso_naive, "msk": iso_msk}


def iso(t: int, style: str = "z") -> str:
    return _FORMAT[style](t)


def weekday(t: int) -> int:
    """Monday 0 .. Sunday 6 of the UTC day of `t` (1970-01-01 was a Thursday)."""
    return (t // DAY + 3) % 7


def at_work(rng: random.Random, t: int, weekend_ok: float = 0.05) -> int:
    """An instant in Moscow office hours on the day of `t` (moved to Monday from a weekend, mostly)."""
    day0 = t - t % DAY
    wd = weekday(day0)
    if wd >= 5 and rng.random() >= weekend_ok:
        day0 += (7 - wd) * DAY
    # 09:00-19:00 Moscow = 06:00-16:00 UTC
    return day0 + 6 * HOUR + rng.randrange(10 * HOUR)


def later(rng: random.Random, t: int, after: int, gap_minutes: int = 90) -> int:
    """`t`, moved to a few minutes after `after` when it is not strictly later."""
    if t > after:
        return t
    return after + MINUTE * (1 + rng.randrange(gap_minutes))


def add_months(d: date, months: int) -> date:
    """`d` plus whole calendar months, the day clipped to the month's length."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))
