"""Where the project keeps its state, read from the environment.

`B2B_HOME` (default `./.b2b`) holds everything stateful: the embedded
warehouse's data directory, Airflow's home and metadata database, logs and
reports. Two homes never see each other. `B2B_WAREHOUSE_DSN`, when set, names
an existing PostgreSQL server to use instead of the embedded one.

The other `B2B_*` settings of the night are read here too, each by a function that names its
variable in the error a bad value raises.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

HOME_ENV = "B2B_HOME"
DSN_ENV = "B2B_WAREHOUSE_DSN"
DEFAULT_HOME = ".b2b"


def b2b_home() -> Path:
    """The project's state directory (created when missing), as an absolute path."""
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def configured_dsn() -> str | None:
    """The warehouse URL of `B2B_WAREHOUSE_DSN`, or None when the embedded warehouse is wanted."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    return dsn or None


TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def _seconds(env: str, default: int) -> int:
    """A whole number of seconds from `env`, `default` when unset."""
    value = os.environ.get(env, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(f"{env} must be a whole number of seconds, not {value!r}")
    return int(value)


def _flag(env: str, default: bool) -> bool:
    """true/false (also 1/0, yes/no, on/off) from `env`, `default` when unset."""
    value = os.environ.get(env, "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"{env}={value!r}: expected true or false")


NIGHT_LOCK_GAP_ENV = "B2B_NIGHT_LOCK_GAP_SECONDS"
DEFAULT_NIGHT_LOCK_GAP = 600


def night_lock_gap() -> int:
    """Seconds after which a night's lease that no process holds counts as abandoned
    (`B2B_NIGHT_LOCK_GAP_SECONDS`, default 600): longer than the pause between two tasks of a night."""
    return _seconds(NIGHT_LOCK_GAP_ENV, DEFAULT_NIGHT_LOCK_GAP)


GATE_MAX_AMOUNT_ENV = "B2B_GATE_MAX_AMOUNT"
GATE_OUTLIER_FACTOR_ENV = "B2B_GATE_OUTLIER_FACTOR"
DEFAULT_GATE_MAX_AMOUNT = "1000000000000"  # 1e12 in the reporting currency
DEFAULT_GATE_OUTLIER_FACTOR = "1000"


def gate_amount_limits() -> tuple[Decimal, Decimal]:
    """The quality gate's plausibility limits, as exact decimals: (max_amount, outlier_factor).

    `B2B_GATE_MAX_AMOUNT` (default 1e12): no money amount in the reporting currency may exceed it
    (blocks). `B2B_GATE_OUTLIER_FACTOR` (default 1000): an amount more than this many times the
    median of the same measure warns. Both accept `1e12`, `1000000000000` or `1_000_000_000_000`;
    anything else, an amount of 0 or less or a factor of 1 or less raises ValueError naming the variable.
    """
    limits = []
    for env, default, least in (
        (GATE_MAX_AMOUNT_ENV, DEFAULT_GATE_MAX_AMOUNT, Decimal(0)),
        (GATE_OUTLIER_FACTOR_ENV, DEFAULT_GATE_OUTLIER_FACTOR, Decimal(1)),
    ):
        text = os.environ.get(env, "").strip() or default
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value <= least:
            raise ValueError(f"{env}={text!r}: expected a finite number greater than {least}")
        limits.append(value)
    return limits[0], limits[1]


ALLOW_EXTERNAL_LINKS_ENV = "B2B_DROP_ALLOW_EXTERNAL_LINKS"


def drop_allow_external_links() -> bool:
    """Whether the file drop may hold symbolic links that lead out of the drop folder
    (`B2B_DROP_ALLOW_EXTERNAL_LINKS`, default false: such a link is refused like a bad file)."""
    return _flag(ALLOW_EXTERNAL_LINKS_ENV, default=False)


PUBLISH_WAIT_ENV = "B2B_PUBLISH_WAIT_SECONDS"
PUBLISH_CANCEL_READERS_ENV = "B2B_PUBLISH_CANCEL_READERS"
DEFAULT_PUBLISH_WAIT = 300


def publish_wait_seconds() -> int:
    """How long the publish swap retries while readers hold the tables it replaces
    (`B2B_PUBLISH_WAIT_SECONDS`, default 300)."""
    return _seconds(PUBLISH_WAIT_ENV, DEFAULT_PUBLISH_WAIT)


def publish_cancel_readers() -> bool:
    """Whether the publish swap, after waiting `B2B_PUBLISH_WAIT_SECONDS`, cancels the reading
    sessions still in its way (`B2B_PUBLISH_CANCEL_READERS`, default true) rather than fail the night."""
    return _flag(PUBLISH_CANCEL_READERS_ENV, default=True)


FAULT_KILL_AT_ENV = "B2B_FAULT_KILL_AT"


def fault_kill_at() -> str | None:
    """A failpoint for the fault suite (`B2B_FAULT_KILL_AT=<task id>`): the process running the night
    kills itself with SIGKILL as that task starts, as a crash at that task boundary would. Unset in
    production."""
    return os.environ.get(FAULT_KILL_AT_ENV, "").strip() or None
