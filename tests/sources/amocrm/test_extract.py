"""The night's extract step with amoCRM configured: the summary the DAG keeps in XCom, and a wrong token:
a clear error naming the connection, the token nowhere (summary, error, logs)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from b2b_pipeline.night import Night
from b2b_pipeline.nightly import extract
from b2b_pipeline.sources.amocrm.connector import AmoCRMError
from b2b_pipeline.sources.amocrm.fake import FakeAmoCRM
from b2b_pipeline.sources.landing import SourceRefused
from b2b_pipeline.sources.registry import ApiConnection

from .conftest import TOKEN

pytestmark = pytest.mark.integration


def test_extract_lands_amocrm_and_keeps_the_token_out(
    warehouse: str, amo_drop: Path, b2b_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeAmoCRM(amo_drop, token=TOKEN, company_field_ids={"tax_id": 555123}) as fake:
        fake.set_clock(fake.now - timedelta(days=1))
        night = Night(fake.now.date(), amo_drop)
        connection = ApiConnection("amocrm", fake.base_url, "Airflow connection b2b_amocrm", TOKEN)
        summary = extract(warehouse, night, "crm", connection)
        assert summary["system"] == "crm" and summary["source"] == "amocrm"
        assert summary["rows"]["leads"] > 0 and summary["requests"] > 0
        assert TOKEN not in json.dumps(summary)

        wrong = ApiConnection("amocrm", fake.base_url, "Airflow connection b2b_amocrm", "wrong-" + TOKEN[::-1])
        with pytest.raises(Exception) as failed:
            extract(warehouse, night, "crm", wrong)
    error = failed.value
    assert isinstance(error, SourceRefused)  # on top of dlt's wrapping: the DAG fails it without retrying
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, AmoCRMError) for e in chain), [type(e) for e in chain]
    text = " ".join(str(e) for e in chain)
    assert "b2b_amocrm" in text
    assert wrong.secret not in text and TOKEN not in text
    assert "/api/v4/leads" in caplog.text  # the log was captured ...
    assert TOKEN not in caplog.text and wrong.secret not in caplog.text
