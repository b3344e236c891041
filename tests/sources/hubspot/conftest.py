"""A tiny demo drop for the HubSpot fake and connector tests (a few accounts: fast)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.generate import generate_company

TOKEN = "pat-eu1-hubspot-test-token-7c2e"


@pytest.fixture(scope="session")
def hubspot_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drop of 8 accounts over three months, the last 2 days as nightly folders."""
    out = tmp_path_factory.mktemp("hubspot_drop")
    generate_company(out, seed=11, accounts=8, start=date(2026, 9, 1), end=date(2026, 11, 25), nightly_days=2)
    return out
