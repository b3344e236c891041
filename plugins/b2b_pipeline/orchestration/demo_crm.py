"""`b2b demo --crm amocrm|bitrix24`: the demo company's CRM served by the local fake of that service.

The fake is seeded from the demo's file drop and its clock stands at the last second of the
night's as-of day, so it serves what the drop holds as of that night. The night reads it as it
would read the real service: `B2B_CRM_SOURCE` names the source and the Airflow connection
`b2b_<source>` points at the fake (as `AIRFLOW_CONN_B2B_<SOURCE>`, which wins over a connection of
that name in the metadata database and over `B2B_<SOURCE>_URL`), so that a connection to a real
account can never be read by the demo; both are set for the time of the demo and restored after.
The fake answers faster than the real service allows (`DEMO_FAKE_REQUESTS_PER_SECOND`) and the
connector asks for less (`DEMO_REQUESTS_PER_SECOND`), so that the demo does not wait on a rate
limit; `documented_minutes` says how long the same requests take at the documented limit.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from b2b_pipeline.config import CRM_SOURCE_ENV
from b2b_pipeline.night import cutoff
from b2b_pipeline.orchestration.source_connection import connection_id

DEMO_FAKE_REQUESTS_PER_SECOND = 50
DEMO_REQUESTS_PER_SECOND = 40  # the connector's own limit: under the fake's, so that it answers no 429
# the rate each service documents: amoCRM 7 requests a second per integration; Bitrix24 2 a
# second (its leaky bucket, after a burst of 50)
DOCUMENTED_REQUESTS_PER_SECOND = {"amocrm": 7.0, "bitrix24": 2.0}
TITLES = {"amocrm": "amoCRM", "bitrix24": "Bitrix24"}


@dataclass
class DemoCrm:
    """A running fake and how the night reaches it."""

    source: str
    fake: Any
    environment: dict[str, str]

    @property
    def title(self) -> str:
        return TITLES[self.source]

    def requests(self) -> int:
        """The API requests the fake has answered (batch commands count as the one request they came in)."""
        if self.source == "amocrm":
            return self.fake.request_count()
        return sum(1 for call in self.fake.calls if not call.via_batch)

    def documented_minutes(self) -> float:
        """Minutes the requests answered so far take at the service's documented rate."""
        return self.requests() / DOCUMENTED_REQUESTS_PER_SECOND[self.source] / 60


def start_fake(source: str, drop: Path, as_of: date) -> tuple[Any, str, str]:
    """Start the fake of `source` serving `drop` as of the end of `as_of`: (fake, base URL, token)."""
    moment = cutoff(as_of) - timedelta(seconds=1)
    token = secrets.token_hex(16)
    if source == "amocrm":
        from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM

        fake = FakeAmoCRM(drop, token=token, now=moment, requests_per_second=DEMO_FAKE_REQUESTS_PER_SECOND).start()
        return fake, fake.base_url, token
    if source == "bitrix24":
        from b2b_pipeline.sources.bitrix24.fake import FakeBitrix24

        fake = FakeBitrix24(drop, webhook_user=1, webhook_secret=token, now=moment, rate=DEMO_FAKE_REQUESTS_PER_SECOND)
        fake.start()
        return fake, fake.webhook_url, ""  # the webhook URL carries the secret
    raise ValueError(f"no fake for {source!r} (known: {', '.join(TITLES)})")


def demo_environment(source: str, url: str, token: str) -> dict[str, str]:
    """The environment that points the night's CRM at `url`: the source, and the Airflow connection
    `b2b_<source>` as a URI-less JSON connection (host: the URL; password: the token)."""
    connection = {
        "conn_type": "http",
        "host": url,
        "password": token,
        "extra": {"requests_per_second": str(DEMO_REQUESTS_PER_SECOND)},
    }
    return {CRM_SOURCE_ENV: source, f"AIRFLOW_CONN_{connection_id(source).upper()}": json.dumps(connection)}


@contextmanager
def serve_demo_crm(source: str, drop: Path, as_of: date) -> Iterator[DemoCrm]:
    """The fake of `source` running, and the environment pointing the night at it; both undone after."""
    fake, url, token = start_fake(source, drop, as_of)
    saved: dict[str, str | None] = {}
    try:
        variables = demo_environment(source, url, token)
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        yield DemoCrm(source, fake, variables)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fake.stop()
