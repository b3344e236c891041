"""Generation streams: peak memory does not grow with the number of accounts."""

from __future__ import annotations

import tracemalloc
from datetime import date

from b2b_pipeline.generate import generate_company

# a shorter period keeps the traced runs fast; memory per account is what matters
PERIOD = {"start": date(2026, 5, 1), "end": date(2026, 11, 25), "nightly_days": 5}


def peak(out, accounts: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        summary = generate_company(out, seed=1, accounts=accounts, **PERIOD)
        return tracemalloc.get_traced_memory()[1], summary.total_rows
    finally:
        tracemalloc.stop()


def test_peak_memory_is_bounded(tmp_path):
    small, small_rows = peak(tmp_path / "small", 100)
    big, big_rows = peak(tmp_path / "big", 1000)
    assert big_rows > 8 * small_rows
    # holding the rows (hundreds of bytes each) would add megabytes; allow a little for the
    # largest account seen and the day-folder files opened so far
    assert big < small * 1.5 + 512 * 1024, (small, big)
    assert big < 16 * 1024 * 1024
