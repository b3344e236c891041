"""Records and their versions over time, collected for one account before they are written.

A record is its first row plus changes, each at an instant; its versions are the
states after each change, in time order, with `updated_at` the time of the change.
Values that are `int` are instants (written as ISO 8601 text at output time, in the
record's timestamp style). Versions at or after the horizon (the end of the
simulated period) do not exist yet and are dropped.
"""

from __future__ import annotations

from b2b_pipeline.filedrop.spec import ENTITIES

Value = str | int
Row = dict[str, Value]
Version = tuple[int, Row, str]  # (instant, row, timestamp style)

_HAS_UPDATED_AT = {e.name: "updated_at" in e.column_names for e in ENTITIES}


class Log:
    """The versions of every record of one account (or of the global records), by entity and key."""

    __slots__ = ("horizon", "records")

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.records: dict[str, dict[object, list[Version]]] = {e.name: {} for e in ENTITIES}

    def put(self, entity: str, key: object, t: int, row: Row, style: str = "z") -> None:
        if t >= self.horizon:
            return
        if _HAS_UPDATED_AT[entity]:
            row["updated_at"] = t
        self.records[entity].setdefault(key, []).append((t, row, style))

    def event(self, entity: str, key: object, t: int, row: Row, style: str = "z") -> None:
        """A record with a single version (a stage entry, an exchange rate)."""
        self.put(entity, key, t, row, style)


class Record:
    """A record as its first row at `t0` plus later changes; `emit` writes its versions to a log."""

    __slots__ = ("changes", "entity", "key", "style", "t0")

    def __init__(self, entity: str, key: str, t0: int, row: Row, style: str = "z") -> None:
        self.entity = entity
        self.key = key
        self.t0 = t0
        self.style = style
        self.changes: list[tuple[int, int, Row]] = [(t0, 0, row)]

    @property
    def row(self) -> Row:
        """The first row (mutable until `emit`)."""
        return self.changes[0][2]

    def change(self, t: int, **values: Value) -> None:
        """A new version at `t` with these values changed (never before the record existed)."""
        self.changes.append((max(t, self.t0), len(self.changes), values))

    def emit(self, log: Log) -> None:
        state: Row = {}
        last_t = None
        pending: Row | None = None
        for t, _, values in sorted(self.changes, key=lambda c: (c[0], c[1])):
            if pending is not None and t != last_t:
                log.put(self.entity, self.key, last_t, pending, self.style)  # type: ignore[arg-type]
            state.update(values)
            pending = dict(state)
            last_t = t
        if pending is not None:
            log.put(self.entity, self.key, last_t, pending, self.style)  # type: ignore[arg-type]
