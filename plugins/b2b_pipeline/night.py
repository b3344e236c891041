"""A night, named by its as-of date D and the drop folder it reads.

A night counts everything before D + 1 day 00:00 UTC (`cutoff`). The scheduled run at 02:00 UTC
of day D + 1 covers the data interval [D 02:00, D+1 02:00) and so gets D; a manual run names D
in its conf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from b2b_pipeline.config import SOURCE_DIR_ENV, source_dir


class NightConfigError(ValueError):
    """The night cannot be named: no as-of date or no drop folder."""


def cutoff(as_of: date) -> datetime:
    """The first instant a night of as-of date `as_of` does not count: the next day, 00:00 UTC.

    The dbt macro `cutoff()` (dbt_project/macros/as_of.sql) renders the same instant in SQL;
    tests/transform/test_cutoff.py holds the two equal.
    """
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC)


def scheduled_as_of(data_interval_end: datetime) -> date:
    """The as-of date of a scheduled run: the day before its data interval ends."""
    return (data_interval_end - timedelta(days=1)).date()


@dataclass(frozen=True)
class Night:
    as_of: date
    source_dir: Path

    @property
    def cutoff(self) -> datetime:
        return cutoff(self.as_of)

    def as_dict(self) -> dict[str, str]:
        return {"as_of_date": self.as_of.isoformat(), "source_dir": str(self.source_dir)}

    @classmethod
    def from_dict(cls, value: Mapping[str, str]) -> Night:
        return cls(as_of=date.fromisoformat(value["as_of_date"]), source_dir=Path(value["source_dir"]))


def resolve_night(conf: Mapping[str, Any] | None, data_interval_end: datetime | None) -> Night:
    """The night of a DAG run: `as_of_date` and `source_dir` from its conf, else from its data
    interval and `B2B_SOURCE_DIR`."""
    conf = conf or {}
    if conf.get("as_of_date"):
        try:
            as_of = date.fromisoformat(str(conf["as_of_date"]))
        except ValueError as exc:
            raise NightConfigError(f"as_of_date {conf['as_of_date']!r} is not a date YYYY-MM-DD") from exc
    elif data_interval_end is not None:
        as_of = scheduled_as_of(data_interval_end)
    else:
        raise NightConfigError("no as_of_date in the run's conf and no data interval")
    folder = Path(str(conf["source_dir"])).expanduser().resolve() if conf.get("source_dir") else source_dir()
    if folder is None:
        raise NightConfigError(f"no source_dir in the run's conf and {SOURCE_DIR_ENV} is not set")
    if not folder.is_dir():
        raise NightConfigError(f"the drop folder {folder} does not exist")
    return Night(as_of=as_of, source_dir=folder)
