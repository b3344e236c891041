"""Which rows of a file drop a fake CRM serves: the well-formed ones only.

The fakes of amoCRM and Bitrix24 are seeded from a file drop of the demo generator, which can
break rows on purpose (`error_rate`: a missing stage, an amount of "n/a") for the loader to
quarantine. A CRM holds no such record (its export garbled it, or it never existed), so a fake
serves a row only when it keeps the file-drop contract (`filedrop.spec`): required values present,
numbers, dates, timestamps and booleans readable, closed lists respected. This follows the
loader's rules (`filedrop/validate.py`, in SQL) in Python for the fakes, who have no database, and
is a little more lenient at the edges (a decimal comma in any file, booleans in any case); the
loader remains the authority on what the drop path keeps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from b2b_pipeline.filedrop.spec import Column, Entity, Kind

ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
BOOLEANS = frozenset({"true", "false", "1", "0"})


def _value(row: Mapping[str, object], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _readable(column: Column, text: str) -> bool:
    if column.kind is Kind.TIMESTAMP:
        if not ISO_TIMESTAMP.match(text):
            return False  # zone names and other forms are quarantined by the loader too
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    if column.kind is Kind.DATE:
        try:
            date.fromisoformat(text)
        except ValueError:
            return False
        return len(text) == 10
    if column.kind in (Kind.NUMBER, Kind.INTEGER):
        try:
            number = Decimal(text.replace(",", ".")) if column.kind is Kind.NUMBER else Decimal(int(text))
        except (InvalidOperation, ValueError):
            return False
        if not number.is_finite() or (column.non_negative and number < 0):
            return False
        low = column.min_value if column.min_value is not None else float("-inf")
        high = column.max_value if column.max_value is not None else float("inf")
        return low <= number <= high
    if column.kind is Kind.BOOLEAN:
        return text.lower() in BOOLEANS
    return True


def well_formed(entity: Entity, row: Mapping[str, object]) -> bool:
    """Whether `row` of `entity` keeps the file-drop contract (see the module doc)."""
    for column in entity.columns:
        text = _value(row, column.name)
        if text is None:
            if column.required:
                return False
            if column.required_when is not None:
                other, values = column.required_when
                if _value(row, other) in values:
                    return False
            continue
        if not _readable(column, text):
            return False
        if column.allowed and text not in column.allowed:
            return False
    return True
