"""A small demo drop for the Stripe fake, connector and staging tests (a few customers: fast)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.generate import generate_company

API_KEY = "sk_test_51FakeKeyForTests0000stripe9Z"


@pytest.fixture(scope="session")
def stripe_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drop of 20 accounts over 15 months (about a dozen customers and subscriptions, 90 invoice
    versions), the last 2 days as nightly folders."""
    out = tmp_path_factory.mktemp("stripe_drop")
    generate_company(out, seed=11, accounts=20, start=date(2025, 9, 1), end=date(2026, 11, 25), nightly_days=2)
    return out
