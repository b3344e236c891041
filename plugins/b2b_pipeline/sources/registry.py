"""Which connector reads a source system, and its connection: the one place a new API source is named.

A night's CRM comes from the file drop or from an API (`B2B_CRM_SOURCE`: amocrm, bitrix24, hubspot),
its billing from the drop or from Stripe (`B2B_BILLING_SOURCE`); an API source's
connection (base URL, credential, options) comes from the Airflow connection `b2b_<source>`
(`AIRFLOW_CONN_B2B_AMOCRM`...) or from `B2B_<SOURCE>_*` variables (`config.api_source_environment`).
`extract_api` lands tonight's changes of the source in `raw_<source>` and says what it landed.
The credential is in `ApiConnection.secret`, which its repr, its `describe()` and every summary
leave out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from b2b_pipeline.config import api_source_environment
from b2b_pipeline.sources.landing import LandingReport, RequestCounter, SourceRefused, land

API_SOURCES: tuple[str, ...] = ("amocrm", "bitrix24", "hubspot", "stripe")


class SourceConfigError(ValueError):
    """An API source is chosen but its connection is missing or incomplete."""


@dataclass(frozen=True)
class ApiConnection:
    """How to reach an API source. The credential (`secret`: amoCRM's token, a HubSpot private app's
    access token, a Stripe restricted key; a Bitrix24 webhook URL carries its own in `base_url`)
    never appears in a repr, a log line or a summary: neither field is in the repr, and `name`
    (where the connection was defined) is what errors show."""

    source: str
    base_url: str = field(repr=False)
    name: str  # where it was defined: "Airflow connection b2b_amocrm" or "environment B2B_AMOCRM_URL"
    secret: str = field(default="", repr=False)
    options: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.source} ({self.name})"


def connection_from_environment(source: str) -> ApiConnection | None:
    """The connection of `source` from its `B2B_<SOURCE>_*` variables, or None when they name none."""
    found = api_source_environment(source)
    if found is None:
        return None
    options = {k: v for k, v in found.items() if k not in ("url", "token")}
    return ApiConnection(source, found["url"], f"environment B2B_{source.upper()}_URL", found["token"], options)


def _amocrm(connection: ApiConnection, counter: RequestCounter, started_at: datetime) -> Any:
    from b2b_pipeline.sources.amocrm.connector import AmoCRMSettings, amocrm_source

    options = dict(connection.options)
    settings = AmoCRMSettings(
        connection_name=connection.name,
        tax_id_field=_field(options.get("tax_id_field", AmoCRMSettings.tax_id_field)),
        web_field=_field(options.get("web_field", AmoCRMSettings.web_field)),
        lookback_seconds=int(options.get("lookback_seconds", AmoCRMSettings.lookback_seconds)),
        requests_per_second=float(options.get("requests_per_second", AmoCRMSettings.requests_per_second)),
    )
    if not connection.secret:
        raise SourceConfigError(f"{connection.describe()}: no token (the connection's password, or B2B_AMOCRM_TOKEN)")
    return amocrm_source(
        connection.base_url, connection.secret, settings=settings, counter=counter, started_at=started_at
    )


def _bitrix24(connection: ApiConnection, counter: RequestCounter, started_at: datetime) -> Any:
    from b2b_pipeline.sources.bitrix24.connector import Bitrix24Settings, bitrix24_source

    options = dict(connection.options)
    settings = Bitrix24Settings(
        connection=connection.name,
        lookback_seconds=float(options.get("lookback_seconds", Bitrix24Settings.lookback_seconds)),
        requests_per_second=float(options.get("requests_per_second", Bitrix24Settings.requests_per_second)),
        counter=counter,
    )
    return bitrix24_source(connection.base_url, settings=settings)


def _hubspot(connection: ApiConnection, counter: RequestCounter, started_at: datetime) -> Any:
    from b2b_pipeline.sources.hubspot.connector import HubSpotSettings, hubspot_source

    options = dict(connection.options)
    settings = HubSpotSettings(
        connection_name=connection.name,
        lookback_seconds=float(options.get("lookback_seconds", HubSpotSettings.lookback_seconds)),
        requests_per_second=float(options.get("requests_per_second", HubSpotSettings.requests_per_second)),
        search_requests_per_second=float(
            options.get("search_requests_per_second", HubSpotSettings.search_requests_per_second)
        ),
        tax_id_property=options.get("tax_id_property", HubSpotSettings.tax_id_property),
        lead_source_property=options.get("lead_source_property", HubSpotSettings.lead_source_property),
        expected_close_date_property=options.get(
            "expected_close_date_property", HubSpotSettings.expected_close_date_property
        ),
    )
    if not connection.secret:
        raise SourceConfigError(
            f"{connection.describe()}: no access token (the connection's password, or B2B_HUBSPOT_TOKEN)"
        )
    return hubspot_source(
        connection.base_url, connection.secret, settings=settings, counter=counter, started_at=started_at
    )


def _stripe(connection: ApiConnection, counter: RequestCounter, started_at: datetime) -> Any:
    from b2b_pipeline.sources.stripe.connector import StripeSettings, stripe_source

    options = dict(connection.options)
    settings = StripeSettings(
        connection_name=connection.name,
        requests_per_second=float(options.get("requests_per_second", StripeSettings.requests_per_second)),
    )
    if not connection.secret:
        raise SourceConfigError(f"{connection.describe()}: no API key (the connection's password, or B2B_STRIPE_TOKEN)")
    return stripe_source(
        connection.base_url, connection.secret, settings=settings, counter=counter, started_at=started_at
    )


def _field(value: str | int) -> str | int:
    """A custom field named by its id (digits) or its name or code."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


CONNECTORS = {"amocrm": _amocrm, "bitrix24": _bitrix24, "hubspot": _hubspot, "stripe": _stripe}


def extract_api(dsn: str, connection: ApiConnection, *, home: Path | None = None) -> dict[str, Any]:
    """Land tonight's changes of an API source in `raw_<source>`; a summary for XCom and logs (no secret)."""
    if connection.source not in CONNECTORS:
        raise SourceConfigError(f"no connector for {connection.source!r} (known: {', '.join(CONNECTORS)})")
    counter = RequestCounter()
    source = CONNECTORS[connection.source](connection, counter, datetime.now(UTC))
    try:
        report: LandingReport = land(dsn, connection.source, source, home=home)
    except Exception as exc:  # dlt wraps the connector's error in its own (PipelineStepFailed...)
        refused = _refusal(exc)
        if refused is None:
            raise
        raise SourceRefused(str(refused)) from exc
    return {
        "source": connection.source,
        "connection": connection.name,
        "rows_landed": report.rows_landed,
        "rows": dict(report.rows),
        "requests": counter.total,
        "load_ids": list(report.load_ids),
    }


def _refusal(exc: BaseException) -> SourceRefused | None:
    """The service's refusal of the credential somewhere in `exc`'s chain of causes, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, SourceRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
