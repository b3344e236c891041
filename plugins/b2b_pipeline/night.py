"""A night, named by its as-of date D and the drop folder it reads.

A night counts everything before D + 1 day 00:00 in the reporting time zone (`cutoff`; the
setting `reporting_timezone`, UTC by default). The scheduled run at 04:00 (in that zone: after
midnight, and clear of the hours daylight saving skips or repeats) of day D + 1 covers the data
interval [D 04:00, D+1 04:00) and so gets D; a manual run names D in its conf.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from b2b_pipeline.config import SOURCE_DIR_ENV, effective_settings, night_settings, reporting_timezone, source_dir

log = logging.getLogger(__name__)


class NightConfigError(ValueError):
    """The night cannot be named: no as-of date or no drop folder."""


def cutoff(as_of: date, timezone: str | None = None) -> datetime:
    """The first instant a night of as-of date `as_of` does not count: the next day, 00:00 in the
    reporting time zone (`timezone`, else the setting `reporting_timezone`, UTC by default), in UTC.

    The dbt macro `cutoff()` (dbt_project/macros/as_of.sql) renders the same instant in SQL;
    tests/transform/test_cutoff.py holds the two equal.
    """
    zone = ZoneInfo(timezone or reporting_timezone())
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def schedule_timezone() -> str:
    """The time zone of the nightly schedule: the setting `reporting_timezone`, or UTC while the setting
    is invalid (the DAG must still load; its first task, `resolve_night`, then fails naming the value)."""
    try:
        return reporting_timezone()
    except ValueError:
        log.warning("the nightly schedule runs on UTC until the setting is fixed", exc_info=True)
        return "UTC"


def scheduled_as_of(data_interval_end: datetime, timezone: str | None = None) -> date:
    """The as-of date of a scheduled run: the day before the one its data interval ends in, on the
    reporting time zone's calendar (`timezone`, else the setting), so that the day is over there."""
    zone = ZoneInfo(timezone or reporting_timezone())
    end = data_interval_end if data_interval_end.tzinfo else data_interval_end.replace(tzinfo=UTC)
    return end.astimezone(zone).date() - timedelta(days=1)


@dataclass(frozen=True)
class Night:
    as_of: date
    source_dir: Path
    # the settings the night runs with (config.night_settings), fixed by resolve_night so that every task
    # of one night uses the same ones whatever happens to b2b.yml meanwhile; None: read them when needed
    settings: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def timezone(self) -> str | None:
        """The night's reporting time zone, when its settings are fixed."""
        return str(self.settings["reporting_timezone"]) if self.settings else None

    @property
    def cutoff(self) -> datetime:
        return cutoff(self.as_of, self.timezone)

    def as_dict(self) -> dict[str, Any]:
        named: dict[str, Any] = {"as_of_date": self.as_of.isoformat(), "source_dir": str(self.source_dir)}
        if self.settings is not None:
            named["settings"] = dict(self.settings)
        return named

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Night:
        return cls(
            as_of=date.fromisoformat(value["as_of_date"]),
            source_dir=Path(value["source_dir"]),
            settings=value.get("settings"),
        )


def resolve_night(conf: Mapping[str, Any] | None, data_interval_end: datetime | None) -> Night:
    """The night of a DAG run: `as_of_date` and `source_dir` from its conf, else from its data
    interval and `B2B_SOURCE_DIR`. An invalid deployment setting (b2b.yml or its variables) fails it,
    naming where the value is, before the night does anything; the night keeps the settings it read
    (`Night.settings`), so that all its tasks use the same."""
    try:
        effective_settings()
        settings = night_settings()
    except ValueError as exc:
        raise NightConfigError(str(exc)) from exc
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
    return Night(as_of=as_of, source_dir=folder, settings=settings)
