"""A tiny demo drop for the amoCRM fake and connector tests (a few accounts: fast)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.generate import generate_company

TOKEN = "amo-test-token-5f1c9e"


@pytest.fixture(scope="session")
def amo_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drop of 8 accounts over three months, the last 2 days as nightly folders."""
    out = tmp_path_factory.mktemp("amo_drop")
    generate_company(out, seed=11, accounts=8, start=date(2026, 9, 1), end=date(2026, 11, 25), nightly_days=2)
    return out
