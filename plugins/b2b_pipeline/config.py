"""The project's settings: every `B2B_*` environment variable is read here and nowhere else.

`B2B_HOME` (default `./.b2b`) holds everything stateful: the embedded
warehouse's data directory, Airflow's home and metadata database, logs and
reports. Two homes never see each other. `B2B_WAREHOUSE_DSN`, when set, names
an existing PostgreSQL server to use instead of the embedded one.

Where the project's own files are: `B2B_PROJECT_DIR` (the root holding `dags/`, `dbt_project/`
and `expectations/`; default this repository), `B2B_DBT_PROJECT_DIR` and `B2B_EXPECTATIONS_DIR`
(one of them elsewhere). The other settings of the night are read by a function each, which
names its variable in the error a bad value raises. `tests/test_layers.py` keeps every other
module from reading a `B2B_*` variable itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

HOME_ENV = "B2B_HOME"
DSN_ENV = "B2B_WAREHOUSE_DSN"
DEFAULT_HOME = ".b2b"
PROJECT_DIR_ENV = "B2B_PROJECT_DIR"
DBT_PROJECT_DIR_ENV = "B2B_DBT_PROJECT_DIR"
EXPECTATIONS_DIR_ENV = "B2B_EXPECTATIONS_DIR"
SOURCE_DIR_ENV = "B2B_SOURCE_DIR"
DBT_THREADS_ENV = "B2B_DBT_THREADS"
# dbt's threads when B2B_DBT_THREADS is unset (profiles.yml repeats it): the SQL runs in PostgreSQL,
# so a few more threads than cores keep both cores busy while dbt itself waits
DEFAULT_DBT_THREADS = 4
# the default of the deployment setting `reporting_currency` (and of `fx_base_currency`): the dbt var
# `reporting_currency`'s default in dbt_project.yml (tests/test_settings.py holds the two equal)
REPORTING_CURRENCY = "RUB"


def b2b_home() -> Path:
    """The project's state directory (created when missing), as an absolute path."""
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def reports_dir(home: Path | None = None) -> Path:
    """Where the night's reports go: `<B2B_HOME>/reports` (one folder per as-of date, `latest/`, `dbt_docs/`)."""
    return (home or b2b_home()) / "reports"


def _path(env: str) -> Path | None:
    value = os.environ.get(env, "").strip()
    return Path(value).expanduser().resolve() if value else None


def project_root() -> Path:
    """The repository (or image) root holding dags/, dbt_project/ and expectations/:
    `B2B_PROJECT_DIR`, else the checkout this package lives in."""
    # plugins/b2b_pipeline/config.py -> the repository root
    return _path(PROJECT_DIR_ENV) or Path(__file__).resolve().parents[2]


def dbt_project_dir() -> Path:
    """The dbt project: `B2B_DBT_PROJECT_DIR`, else `dbt_project/` of the project root."""
    return _path(DBT_PROJECT_DIR_ENV) or project_root() / "dbt_project"


def dags_folder() -> Path:
    """The Airflow DAGs of the project: `dags/` of the project root."""
    return project_root() / "dags"


def expectations_dir() -> Path:
    """The expectation suites: `B2B_EXPECTATIONS_DIR`, else `expectations/` of the project root."""
    return _path(EXPECTATIONS_DIR_ENV) or project_root() / "expectations"


def source_dir() -> Path | None:
    """The file drop a scheduled night reads when its run names none (`B2B_SOURCE_DIR`), if set."""
    return _path(SOURCE_DIR_ENV)


def dbt_threads() -> int:
    """How many models dbt builds at once: `B2B_DBT_THREADS`, else DEFAULT_DBT_THREADS."""
    value = os.environ.get(DBT_THREADS_ENV, "").strip()
    if not value:
        return DEFAULT_DBT_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{DBT_THREADS_ENV} must be a positive whole number, not {value!r}")
    return int(value)


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


CRM_SOURCE_ENV = "B2B_CRM_SOURCE"
BILLING_SOURCE_ENV = "B2B_BILLING_SOURCE"
CRM_SOURCES: tuple[str, ...] = ("files", "amocrm", "bitrix24", "hubspot")
BILLING_SOURCES: tuple[str, ...] = ("files", "stripe")


def _file_choice(key: str, env: str, choices: tuple[str, ...], default: str) -> str:
    """A setting of the settings file that an environment variable overrides, one of `choices`."""
    found = _setting(key)
    value = found.text.lower() if found else default
    if value not in choices:
        raise ValueError(f"{found.origin if found else env}: {key}={value!r}: expected one of {', '.join(choices)}")
    return value


def crm_source() -> str:
    """Where the night reads the CRM: `crm_source` of the settings file or `B2B_CRM_SOURCE` = files
    (the drop's crm/, the default), amocrm or bitrix24 (the API, with the connection of that name)."""
    return _file_choice("crm_source", CRM_SOURCE_ENV, CRM_SOURCES, "files")


def billing_source() -> str:
    """Where the night reads billing: `billing_source` of the settings file or `B2B_BILLING_SOURCE` =
    files (the drop's billing/, the default)."""
    return _file_choice("billing_source", BILLING_SOURCE_ENV, BILLING_SOURCES, "files")


SOURCE_FRESHNESS_ENV = "B2B_SOURCE_FRESHNESS"
SOURCE_FRESHNESS_MODES: tuple[str, ...] = ("block", "warn", "off")


def source_freshness_mode() -> str:
    """What a source table past its `error_after` does to the night (`dbt source freshness`, run by the
    quality gate): `block` (the default) blocks it, `warn` only warns, `off` skips the check. A table past
    `warn_after` always warns. `source_freshness` of the settings file, or `B2B_SOURCE_FRESHNESS`."""
    return _file_choice("source_freshness", SOURCE_FRESHNESS_ENV, SOURCE_FRESHNESS_MODES, "block")


# An API source's connection, when no Airflow connection `b2b_<source>` is defined:
# B2B_<SOURCE>_URL (the base URL: https://<subdomain>.amocrm.ru, or a Bitrix24 inbound webhook
# https://<portal>/rest/<user>/<secret>/, which is itself a credential), B2B_<SOURCE>_TOKEN (amoCRM's
# long-lived token) and B2B_<SOURCE>_<OPTION> for the connector's options (see docs/sources.md).
API_OPTIONS: dict[str, tuple[str, ...]] = {
    "amocrm": ("tax_id_field", "web_field", "lookback_seconds", "requests_per_second"),
    "bitrix24": ("lookback_seconds", "requests_per_second"),
    "hubspot": (
        "lookback_seconds",
        "requests_per_second",
        "search_requests_per_second",
        "tax_id_property",
        "lead_source_property",
        "expected_close_date_property",
    ),
    "stripe": ("requests_per_second",),
}


def api_source_environment(source: str) -> dict[str, str] | None:
    """The connection of API source `source` from the environment: {"url", "token", options...},
    or None when `B2B_<SOURCE>_URL` is not set."""
    prefix = f"B2B_{source.upper()}_"
    url = os.environ.get(prefix + "URL", "").strip()
    if not url:
        return None
    found = {"url": url, "token": os.environ.get(prefix + "TOKEN", "").strip()}
    for option in API_OPTIONS.get(source, ()):
        value = os.environ.get(prefix + option.upper(), "").strip()
        if value:
            found[option] = value
    return found


# ------------------------------------------------------------------------------------------------
# The deployment's settings file
# ------------------------------------------------------------------------------------------------
# One YAML file per deployment, `<B2B_HOME>/b2b.yml` (or `B2B_SETTINGS_FILE`), holds what a deployment
# chooses about its numbers; each key is overridden by its environment variable B2B_<KEY>. The CLI,
# the DAG (whose tasks run with the same B2B_HOME) and the report all read it through this module.
SETTINGS_FILE_ENV = "B2B_SETTINGS_FILE"
SETTINGS_FILE_NAME = "b2b.yml"


@dataclass(frozen=True)
class SettingKey:
    """A key of the settings file: its environment variable, default (as text) and meaning."""

    key: str
    default: str
    help: str

    @property
    def env(self) -> str:
        return "B2B_" + self.key.upper()


SETTING_KEYS: tuple[SettingKey, ...] = (
    SettingKey("reporting_currency", REPORTING_CURRENCY, "ISO 4217 code every money column of the marts is in"),
    SettingKey("fx_base_currency", REPORTING_CURRENCY, "the currency fx_rates quote every other currency in"),
    SettingKey("reporting_timezone", "UTC", "IANA time zone of days, months, cohorts and the as-of cutoff"),
    SettingKey("sales_pipelines", "all", "CRM pipeline_ids that count as sales, comma-separated, or all"),
    SettingKey("crm_source", "files", "where the CRM is read: " + ", ".join(CRM_SOURCES)),
    SettingKey("billing_source", "files", "where billing is read: " + ", ".join(BILLING_SOURCES)),
    SettingKey("source_freshness", "block", "a source past error_after: " + ", ".join(SOURCE_FRESHNESS_MODES)),
)
SETTING_KEY_NAMES = tuple(k.key for k in SETTING_KEYS)


@dataclass(frozen=True)
class FoundSetting:
    """A setting's value as written (stripped text; a list of texts for a list) and where it was found."""

    value: str | tuple[str, ...]
    origin: str

    @property
    def text(self) -> str:
        """The value as one text (a list's items comma-joined), for a setting that takes one value."""
        return self.value if isinstance(self.value, str) else ",".join(self.value)


def settings_file() -> Path:
    """The deployment's settings file: `B2B_SETTINGS_FILE`, else `<B2B_HOME>/b2b.yml` (may not exist)."""
    return _path(SETTINGS_FILE_ENV) or b2b_home() / SETTINGS_FILE_NAME


def _yaml_texts(text: str, where: str) -> object:
    """YAML with every scalar kept as the text written (YAML 1.1 would read `off` as false and `0123`
    as 83); a syntax error raises ValueError naming `where` and the line."""
    try:
        return yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc


def _found(key: str, value: object, origin: str) -> FoundSetting:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return FoundSetting(tuple(item.strip() for item in value), origin)
    if isinstance(value, str) and value.strip():
        return FoundSetting(value.strip(), origin)
    raise ValueError(f"{origin}: {key} needs a value, or a list of values (see `b2b config show`)")


_FILE_CACHE: dict[tuple[str, int, int], dict[str, FoundSetting]] = {}


def _settings_file_values() -> dict[str, FoundSetting]:
    """The keys of the settings file, as written; {} when there is no file. A file that is not a YAML
    mapping of known keys raises ValueError naming the file (and the line, for bad YAML). Read again
    only when the file changes."""
    path = settings_file()
    if not path.is_file():
        if _path(SETTINGS_FILE_ENV):
            raise ValueError(f"{SETTINGS_FILE_ENV}={path}: no such file")
        return {}
    stat = path.stat()
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
    if cache_key in _FILE_CACHE:
        return _FILE_CACHE[cache_key]
    data = _yaml_texts(path.read_text(encoding="utf-8"), str(path))
    if data is None or data == "":
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings (key: value)")
    unknown = sorted(str(k) for k in data if k not in SETTING_KEY_NAMES)
    if unknown:
        raise ValueError(
            f"{path}: unknown setting {', '.join(unknown)}; the settings are {', '.join(SETTING_KEY_NAMES)}"
        )
    found = {key: _found(key, value, str(path)) for key, value in data.items()}
    _FILE_CACHE.clear()
    _FILE_CACHE[cache_key] = found
    return found


def _setting(key: str) -> FoundSetting | None:
    """Setting `key` from its environment variable `B2B_<KEY>`, else the settings file; None when
    neither sets it. A variable's value `[a, b]` is a YAML flow list."""
    env = "B2B_" + key.upper()
    value = os.environ.get(env, "").strip()
    if value:
        origin = f"environment {env}"
        return _found(key, _yaml_texts(value, origin), origin) if value.startswith("[") else FoundSetting(value, origin)
    return _settings_file_values().get(key)


CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


def _currency(key: str) -> str:
    found = _setting(key)
    value = found.text.upper() if found else REPORTING_CURRENCY
    if not CURRENCY_CODE.match(value):
        raise ValueError(f"{found.origin if found else key}: {key}={value!r}: expected an ISO 4217 code such as EUR")
    return value


def reporting_currency() -> str:
    """The currency every money column of the marts is in (`reporting_currency`, default RUB)."""
    return _currency("reporting_currency")


def fx_base_currency() -> str:
    """The currency `fx_rates` quote every other one in (`fx_base_currency`, default RUB): a rate is
    the units of it one unit of the row's currency is worth; the base itself is 1."""
    return _currency("fx_base_currency")


def reporting_timezone() -> str:
    """The IANA time zone of the marts' days and months and of the as-of cutoff (`reporting_timezone`,
    default UTC). Timestamps stay stored in UTC."""
    found = _setting("reporting_timezone")
    if not found:
        return "UTC"
    try:
        ZoneInfo(found.text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{found.origin}: reporting_timezone={found.text!r}: not an IANA time zone such as Europe/Moscow"
        ) from None
    return found.text


def sales_pipelines() -> tuple[str, ...]:
    """The CRM pipelines (their `pipeline_id` in core.dim_stages) whose deals count in the sales marts
    (`sales_pipelines`): a YAML list, or comma-separated text (an id with a comma needs the list);
    () means all of them, the default (also the text `all`)."""
    found = _setting("sales_pipelines")
    if not found or (isinstance(found.value, str) and found.value.lower() == "all"):
        return ()
    items = found.value.split(",") if isinstance(found.value, str) else found.value
    chosen = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not chosen:
        raise ValueError(f"{found.origin}: sales_pipelines is empty: name pipeline_ids, or all")
    return chosen


@dataclass(frozen=True)
class EffectiveSetting:
    """A setting as the night uses it, and where it came from (default, the file, the environment)."""

    key: str
    value: str
    origin: str
    env: str
    help: str


def effective_settings() -> list[EffectiveSetting]:
    """Every key of the settings file with its effective value and origin (`b2b config show`);
    a bad value raises ValueError naming where it came from."""
    values = {
        "reporting_currency": reporting_currency(),
        "fx_base_currency": fx_base_currency(),
        "reporting_timezone": reporting_timezone(),
        "sales_pipelines": pipelines_text(sales_pipelines()),
        "crm_source": crm_source(),
        "billing_source": billing_source(),
        "source_freshness": source_freshness_mode(),
    }
    shown = []
    for key in SETTING_KEYS:
        found = _setting(key.key)
        shown.append(
            EffectiveSetting(key.key, values[key.key], found.origin if found else "default", key.env, key.help)
        )
    return shown


def pipelines_text(pipelines: tuple[str, ...] | list[str]) -> str:
    """Pipelines as people read them: `all` when every pipeline counts, else the ids, comma-separated."""
    return ", ".join(pipelines) if pipelines else "all"


REPORTING_SETTING_NAMES: tuple[str, ...] = (
    "reporting_currency",
    "fx_base_currency",
    "reporting_timezone",
    "sales_pipelines",
)


def reporting_settings() -> dict[str, object]:
    """The settings the marts' numbers depend on, as dbt vars: reporting_currency, fx_base_currency,
    reporting_timezone and sales_pipelines (a list; empty means all)."""
    return {
        "reporting_currency": reporting_currency(),
        "fx_base_currency": fx_base_currency(),
        "reporting_timezone": reporting_timezone(),
        "sales_pipelines": list(sales_pipelines()),
    }


def night_settings() -> dict[str, object]:
    """Every setting a night's dbt build depends on (the reporting settings and the source systems),
    as dbt vars: what `resolve_night` fixes for the whole night."""
    return {**reporting_settings(), "crm_source": crm_source(), "billing_source": billing_source()}
