"""Compare two sets of metric marts by their grain, with the column kinds of docs/metrics.md.

`assert_marts_equal(actual, expected)` checks every mart named in `expected`:
the rows are matched on the mart's grain key (order does not matter), and each
column docs/metrics.md names is compared by its kind:

- `date`, `text`: equal after normalisation (a `date`, `datetime`, `Timestamp`
  or ISO string all read as a date);
- `count`: exact integers;
- `money`: relative tolerance 1e-6 (and 1e-6 absolute, so that 0 matches 1e-12);
- `number` (ratios, day averages): relative 1e-6, absolute 1e-9;
- NULL (None, NaN, NA, NaT) equals NULL and nothing else; 0 is not NULL.

Columns a frame has beyond docs/metrics.md's are ignored (marts may add columns
freely), unless named in `extra_columns`. All differences of all marts are
collected and reported together in one AssertionError.

`customer_value` is keyed by `account_key`. The reference uses the CRM
`account_id` for CRM accounts and the billing `customer_id` for billing-only
accounts; when the other side uses other keys (a surrogate of dbt's
`dim_accounts`), pass `account_key_map` (actual key -> reference key), e.g.
built with `account_key_map_from_dim_accounts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

DATE, TEXT, COUNT, MONEY, NUMBER = "date", "text", "count", "money", "number"

# mart -> ordered {column: kind}, exactly the columns of docs/metrics.md, in its order
MART_COLUMNS: dict[str, dict[str, str]] = {
    "sales_funnel": {
        "cohort_month": DATE,
        "stage_key": TEXT,
        "stage_order": COUNT,
        "deals_reached": COUNT,
        "deals_reached_next": COUNT,
        "conversion_to_next": NUMBER,
    },
    "sales_performance_monthly": {
        "month": DATE,
        "deals_won": COUNT,
        "deals_lost": COUNT,
        "win_rate": NUMBER,
        "won_amount": MONEY,
        "avg_deal_size": MONEY,
        "avg_cycle_days": NUMBER,
        "median_cycle_days": NUMBER,
    },
    "revenue_monthly": {
        "month": DATE,
        "revenue": MONEY,
        "revenue_new_customers": MONEY,
        "new_customer_revenue_share": NUMBER,
        "paying_customers": COUNT,
    },
    "retention_monthly": {
        "month": DATE,
        "customers_start": COUNT,
        "customers_end": COUNT,
        "customers_new": COUNT,
        "customers_churned": COUNT,
        "retention_rate": NUMBER,
        "churn_rate": NUMBER,
    },
    "repeat_purchase_monthly": {
        "month": DATE,
        "customers_with_purchase": COUNT,
        "customers_with_repeat_purchase": COUNT,
        "repeat_purchase_rate": NUMBER,
    },
    "customer_value": {
        "account_key": TEXT,
        "account_name": TEXT,
        "weighted_open_pipeline": MONEY,
        "active_mrr": MONEY,
        "potential_contract_value": MONEY,
        "as_of_date": DATE,
    },
}

MART_GRAIN: dict[str, tuple[str, ...]] = {
    "sales_funnel": ("cohort_month", "stage_key"),
    "sales_performance_monthly": ("month",),
    "revenue_monthly": ("month",),
    "retention_monthly": ("month",),
    "repeat_purchase_monthly": ("month",),
    "customer_value": ("account_key",),
}

MART_NAMES: tuple[str, ...] = tuple(MART_COLUMNS)

# kinds of the extra columns the reference adds to customer_value
EXTRA_COLUMN_KINDS: dict[str, str] = {
    "crm_account_id": TEXT,
    "billing_customer_ids": TEXT,
    "account_source": TEXT,
}

MAX_REPORTED_ROWS = 25


def is_null(value: Any) -> bool:
    """None, NaN, pd.NA and NaT are NULL."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | Decimal):
        return value != value  # NaN
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _normalise(value: Any, kind: str) -> Any:
    """The comparable Python value of a cell; None for NULL; raises ValueError if it cannot be read."""
    if is_null(value):
        return None
    if kind == DATE:
        if isinstance(value, datetime | pd.Timestamp):
            return pd.Timestamp(value).date()
        if isinstance(value, date):
            return value
        return pd.Timestamp(str(value)).date()
    if kind == TEXT:
        return str(value)
    if kind == COUNT:
        if isinstance(value, bool):
            raise ValueError(f"boolean {value!r} where a count was expected")
        if isinstance(value, int):
            return value
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"non-integer count {value!r}")
        return int(number)
    number = float(value)
    if math.isnan(number):
        return None
    return number


def _values_equal(a: Any, b: Any, kind: str) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if kind == MONEY:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if kind == NUMBER:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def _fmt(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, date):
        return value.isoformat()
    return repr(value)


def _fmt_key(grain: Iterable[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{g}={_fmt(v)}" for g, v in zip(grain, key, strict=True))


def _rows_by_key(
    frame: pd.DataFrame, side: str, mart: str, columns: Mapping[str, str], problems: list[str]
) -> dict[tuple[Any, ...], dict[str, Any]] | None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        problems.append(f"{mart}: {side} lacks column(s) {', '.join(missing)}")
        return None
    grain = MART_GRAIN[mart]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    bad = 0
    for position, record in enumerate(frame[list(columns)].to_dict("records")):
        try:
            values = {c: _normalise(record[c], kind) for c, kind in columns.items()}
        except (TypeError, ValueError) as exc:
            bad += 1
            if bad <= MAX_REPORTED_ROWS:
                problems.append(f"{mart}: {side} row {position} unreadable: {exc}")
            continue
        key = tuple(values[g] for g in grain)
        if any(k is None for k in key):
            problems.append(f"{mart}: {side} row {position} has a NULL grain key ({_fmt_key(grain, key)})")
            continue
        if key in rows:
            problems.append(f"{mart}: {side} has the grain key ({_fmt_key(grain, key)}) more than once")
            continue
        rows[key] = values
    return rows


def diff_mart(
    mart: str,
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    extra_columns: Iterable[str] = (),
) -> list[str]:
    """The differences between two frames of one mart, as readable lines (empty when equal)."""
    columns = dict(MART_COLUMNS[mart])
    for extra in extra_columns:
        columns[extra] = EXTRA_COLUMN_KINDS.get(extra, TEXT)
    grain = MART_GRAIN[mart]
    problems: list[str] = []
    got = _rows_by_key(actual, "actual", mart, columns, problems)
    want = _rows_by_key(expected, "expected", mart, columns, problems)
    if got is None or want is None:
        return problems

    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    for label, keys in (("missing from actual", missing), ("unexpected in actual", unexpected)):
        if keys:
            problems.append(f"{mart}: {len(keys)} row(s) {label}:")
            source = want if label.startswith("missing") else got
            for key in sorted(keys, key=str)[:MAX_REPORTED_ROWS]:
                row = source[key]
                problems.append("    " + ", ".join(f"{c}={_fmt(row[c])}" for c in columns))

    differing = 0
    for key in sorted((k for k in want if k in got), key=str):
        a, e = got[key], want[key]
        cells = [c for c, kind in columns.items() if not _values_equal(a[c], e[c], kind)]
        if cells:
            differing += 1
            if differing <= MAX_REPORTED_ROWS:
                detail = "; ".join(f"{c}: actual {_fmt(a[c])} != expected {_fmt(e[c])}" for c in cells)
                problems.append(f"{mart}: row ({_fmt_key(grain, key)}): {detail}")
    if differing > MAX_REPORTED_ROWS:
        problems.append(f"{mart}: ... {differing - MAX_REPORTED_ROWS} more differing row(s)")
    return problems


def assert_marts_equal(
    actual: Mapping[str, pd.DataFrame],
    expected: Mapping[str, pd.DataFrame],
    *,
    account_key_map: Mapping[str, str] | Callable[[Any], Any] | None = None,
    extra_columns: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Raise AssertionError listing every difference, for every mart in `expected`.

    account_key_map: applied to `actual['customer_value'].account_key` before
    comparing (a mapping or a function; keys it does not map are kept).
    extra_columns: per mart, columns beyond docs/metrics.md to compare as well.
    """
    problems: list[str] = []
    for mart, want in expected.items():
        if mart not in MART_COLUMNS:
            problems.append(f"{mart}: not a mart of docs/metrics.md")
            continue
        if mart not in actual:
            problems.append(f"{mart}: missing from actual")
            continue
        got = actual[mart]
        if mart == "customer_value" and account_key_map is not None and "account_key" in got.columns:
            got = got.copy()
            if callable(account_key_map):
                got["account_key"] = [account_key_map(k) for k in got["account_key"]]
            else:
                got["account_key"] = [account_key_map.get(k, k) for k in got["account_key"]]
        problems += diff_mart(mart, got, want, (extra_columns or {}).get(mart, ()))
    if problems:
        raise AssertionError("marts differ:\n" + "\n".join(problems))


def account_key_map_from_dim_accounts(
    dim_accounts: pd.DataFrame,
    *,
    key_column: str = "account_key",
    crm_id_column: str = "crm_account_id",
    billing_ids_column: str = "billing_customer_ids",
) -> dict[str, str]:
    """Map another side's account keys to the reference's: the CRM id, else the (only) billing id.

    `billing_ids_column` may hold a list/array or a comma-separated string.
    """
    mapping: dict[str, str] = {}
    for record in dim_accounts.to_dict("records"):
        crm_id = record.get(crm_id_column)
        if not is_null(crm_id):
            mapping[str(record[key_column])] = str(crm_id)
            continue
        ids = record.get(billing_ids_column)
        if isinstance(ids, str):
            ids = ids.split(",")
        elif ids is None or not hasattr(ids, "__iter__"):
            ids = []
        cleaned = sorted({str(i).strip() for i in ids if str(i).strip()})
        if len(cleaned) != 1:
            raise ValueError(f"billing-only account {record[key_column]!r} has billing ids {cleaned!r}")
        mapping[str(record[key_column])] = cleaned[0]
    return mapping


def frame_from_rows(mart: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame of `mart` from plain rows (e.g. read from expected.yaml), columns in docs/metrics.md order first."""
    columns = list(MART_COLUMNS[mart])
    extra = [c for row in rows for c in row if c not in columns]
    columns += list(dict.fromkeys(extra))
    return pd.DataFrame.from_records(rows, columns=columns)
