"""Sources chosen by configuration: B2B_CRM_SOURCE picks the connector, its connection comes from the
Airflow connection b2b_<source> or from B2B_<SOURCE>_*; the credential never shows."""

from __future__ import annotations

import json

import pytest

from b2b_pipeline.orchestration.source_connection import api_connection
from b2b_pipeline.sources.registry import SourceConfigError

TOKEN = "secret-token-93ab1"


@pytest.fixture(autouse=True)
def _no_source_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("B2B_CRM_SOURCE", "B2B_AMOCRM_URL", "B2B_AMOCRM_TOKEN", "B2B_BITRIX24_URL", "AIRFLOW_CONN_B2B_AMOCRM"):
        monkeypatch.delenv(name, raising=False)
    for name in ("B2B_BILLING_SOURCE", "B2B_HUBSPOT_URL", "B2B_STRIPE_URL", "AIRFLOW_CONN_B2B_HUBSPOT"):
        monkeypatch.delenv(name, raising=False)


def test_the_file_drop_is_the_default() -> None:
    assert api_connection("crm") is None
    assert api_connection("billing") is None


def test_an_unknown_source_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_CRM_SOURCE", "salesforce")
    with pytest.raises(
        ValueError,
        match="environment B2B_CRM_SOURCE: crm_source='salesforce': expected one of files, amocrm, bitrix24, hubspot",
    ):
        api_connection("crm")


def test_the_airflow_connection_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_CRM_SOURCE", "amocrm")
    monkeypatch.setenv("B2B_AMOCRM_URL", "https://from-env.amocrm.ru")
    conn = {"conn_type": "http", "host": "https://seller.amocrm.ru", "password": TOKEN}
    conn["extra"] = {"tax_id_field": "123"}
    monkeypatch.setenv("AIRFLOW_CONN_B2B_AMOCRM", json.dumps(conn))
    found = api_connection("crm")
    assert found is not None
    assert (found.source, found.base_url, found.secret) == ("amocrm", "https://seller.amocrm.ru", TOKEN)
    assert found.options == {"tax_id_field": "123"}
    assert found.name == "Airflow connection b2b_amocrm"
    assert TOKEN not in repr(found) and TOKEN not in found.describe()


def test_the_environment_when_no_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_CRM_SOURCE", "amocrm")
    monkeypatch.setenv("B2B_AMOCRM_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("B2B_AMOCRM_TOKEN", TOKEN)
    monkeypatch.setenv("B2B_AMOCRM_LOOKBACK_SECONDS", "120")
    found = api_connection("crm")
    assert found is not None and found.secret == TOKEN and found.options == {"lookback_seconds": "120"}
    assert found.name == "environment B2B_AMOCRM_URL" and TOKEN not in repr(found)


def test_a_chosen_source_without_a_connection_says_what_to_define(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_CRM_SOURCE", "bitrix24")
    with pytest.raises(SourceConfigError, match="b2b_bitrix24 nor B2B_BITRIX24_URL"):
        api_connection("crm")


def test_a_bitrix24_webhook_is_a_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_CRM_SOURCE", "bitrix24")
    monkeypatch.setenv("B2B_BITRIX24_URL", f"https://seller.bitrix24.ru/rest/1/{TOKEN}/")
    found = api_connection("crm")
    assert found is not None and found.base_url.endswith(f"/{TOKEN}/")
    assert TOKEN not in repr(found) and TOKEN not in found.describe()


def test_a_pasted_token_loses_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2B_CRM_SOURCE", "hubspot")
    conn = {"conn_type": "http", "host": "https://api.hubapi.com", "password": f"{TOKEN}\n"}
    monkeypatch.setenv("AIRFLOW_CONN_B2B_HUBSPOT", json.dumps(conn))
    found = api_connection("crm")
    assert found is not None and found.secret == TOKEN and found.source == "hubspot"
