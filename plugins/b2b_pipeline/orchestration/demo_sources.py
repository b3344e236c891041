"""`b2b demo --crm amocrm|bitrix24|hubspot --billing stripe`: the demo company's CRM and billing served
by local fakes of those services.

Each fake is seeded from the demo's file drop and its clock stands at the last second of the night's
as-of day, so it serves what the drop holds as of that night. The night reads it as it would read the
real service: `B2B_CRM_SOURCE` / `B2B_BILLING_SOURCE` name the source and the Airflow connection
`b2b_<source>` points at the fake (as `AIRFLOW_CONN_B2B_<SOURCE>`, which wins over a connection of
that name in the metadata database and over `B2B_<SOURCE>_URL`), so that a connection to a real
account can never be read by the demo; both are set for the time of the demo and restored after.
The fakes answer faster than the real services allow (`DEMO_FAKE_REQUESTS_PER_SECOND`) and the
connectors ask for less (`DEMO_REQUESTS_PER_SECOND`), so that the demo does not wait on a rate
limit; `documented_minutes` says how long the same requests take at the documented limit.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from b2b_pipeline.config import BILLING_SOURCE_ENV, CRM_SOURCE_ENV
from b2b_pipeline.night import cutoff
from b2b_pipeline.orchestration.source_connection import connection_id

DEMO_FAKE_REQUESTS_PER_SECOND = 50
DEMO_REQUESTS_PER_SECOND = 40  # the connector's own limit: under the fake's, so that it answers no 429
# the rate each service documents: amoCRM 7 requests a second per integration; Bitrix24 2 a second
# (its leaky bucket, after a burst of 50); HubSpot 100 requests per 10 seconds per private app (a
# Free or Starter account; 190 on Professional and Enterprise); Stripe 25 a second per endpoint
DOCUMENTED_REQUESTS_PER_SECOND = {"amocrm": 7.0, "bitrix24": 2.0, "hubspot": 10.0, "stripe": 25.0}
TITLES = {"amocrm": "amoCRM", "bitrix24": "Bitrix24", "hubspot": "HubSpot", "stripe": "Stripe"}
SYSTEM_OF = {"amocrm": "crm", "bitrix24": "crm", "hubspot": "crm", "stripe": "billing"}
SOURCE_ENV = {"crm": CRM_SOURCE_ENV, "billing": BILLING_SOURCE_ENV}


@dataclass
class DemoSource:
    """A running fake and how the night reaches it."""

    source: str
    fake: Any

    @property
    def title(self) -> str:
        return TITLES[self.source]

    @property
    def system(self) -> str:
        return SYSTEM_OF[self.source]

    def requests(self) -> int:
        """The API requests the fake has answered (Bitrix24's batch commands count as the one request
        they came in)."""
        if self.source == "bitrix24":
            return sum(1 for call in self.fake.calls if not call.via_batch)
        return self.fake.request_count()

    def documented_minutes(self) -> float:
        """Minutes the requests answered so far take at the service's documented rate."""
        return self.requests() / DOCUMENTED_REQUESTS_PER_SECOND[self.source] / 60


def start_fake(source: str, drop: Path, as_of: date) -> tuple[Any, str, str]:
    """Start the fake of `source` serving `drop` as of the end of `as_of`: (fake, base URL, credential)."""
    moment = cutoff(as_of) - timedelta(seconds=1)
    token = secrets.token_hex(16)
    rate = DEMO_FAKE_REQUESTS_PER_SECOND
    if source == "amocrm":
        from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM

        fake = FakeAmoCRM(drop, token=token, now=moment, requests_per_second=rate).start()
        return fake, fake.base_url, token
    if source == "bitrix24":
        from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24

        fake = FakeBitrix24(drop, webhook_user=1, webhook_secret=token, now=moment, rate=rate)
        fake.start()
        return fake, fake.webhook_url, ""  # the webhook URL carries the secret
    if source == "hubspot":
        from b2b_pipeline.sources.hubspot.fake import FakeHubSpot

        fake = FakeHubSpot(drop, token=token, now=moment, requests_per_second=rate).start()
        return fake, fake.base_url, token
    if source == "stripe":
        from b2b_pipeline.sources.stripe.fake import FakeStripe

        key = f"rk_test_{token}"  # a restricted key: read access is all the connector needs
        fake = FakeStripe(drop, api_key=key, now=moment, requests_per_second=rate).start()
        return fake, fake.base_url, key
    raise ValueError(f"no fake for {source!r} (known: {', '.join(TITLES)})")


def demo_environment(source: str, url: str, token: str) -> dict[str, str]:
    """The environment that points the night's CRM or billing at `url`: the source, and the Airflow
    connection `b2b_<source>` as a URI-less JSON connection (host: the URL; password: the credential)."""
    connection = {
        "conn_type": "http",
        "host": url,
        "password": token,
        "extra": {"requests_per_second": str(DEMO_REQUESTS_PER_SECOND)},
    }
    if source == "hubspot":  # the search API's own limit, under the fake's
        connection["extra"]["search_requests_per_second"] = str(DEMO_REQUESTS_PER_SECOND)
    system_env = SOURCE_ENV[SYSTEM_OF[source]]
    return {system_env: source, f"AIRFLOW_CONN_{connection_id(source).upper()}": json.dumps(connection)}


@contextmanager
def serve_demo_sources(sources: list[str], drop: Path, as_of: date) -> Iterator[list[DemoSource]]:
    """The fakes of `sources` running, and the environment pointing the night at them; all undone after."""
    with ExitStack() as stack:
        served: list[DemoSource] = []
        variables: dict[str, str] = {}
        for source in sources:
            if source not in SYSTEM_OF:
                raise ValueError(f"no fake for {source!r} (known: {', '.join(TITLES)})")
            fake, url, token = start_fake(source, drop, as_of)
            stack.callback(fake.stop)
            served.append(DemoSource(source, fake))
            variables |= demo_environment(source, url, token)
        saved = {name: os.environ.get(name) for name in variables}
        stack.callback(_restore, saved)
        os.environ.update(variables)
        yield served


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
