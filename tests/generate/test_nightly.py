"""Nightly mode: a base export plus one folder of changes per day, adding up to the full export."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from b2b_pipeline.generate import generate_company

END = date(2026, 11, 25)
N = 4
ACCOUNTS = 250


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    full, nightly = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("nightly")
    generate_company(full, seed=11, accounts=ACCOUNTS, end=END)
    summary = generate_company(nightly, seed=11, accounts=ACCOUNTS, end=END, nightly_days=N, gzip=True)
    return full, nightly, summary


def test_day_folders(pair):
    _, nightly, summary = pair
    days = [(END - timedelta(days=N - 1 - i)).isoformat() for i in range(N)]
    assert summary.day_folders == days
    for system in ("crm", "billing"):
        assert sorted(p.name for p in (nightly / system).iterdir() if p.is_dir()) == days


def test_files_hold_only_their_day(pair, tools):
    _, nightly, _ = pair
    cutoff = datetime.combine(END - timedelta(days=N - 1), datetime.min.time(), UTC)
    changed_in_day_folders = 0
    for f in tools.drop_files(nightly):
        keys = Counter(tuple(r[k] for k in f.entity.key) for _, r in f.rows)
        assert max(keys.values(), default=1) == 1, f"{f.path}: a record twice in one export"
        for _, row in f.rows:
            t = tools.version_time(f.entity, row)
            if isinstance(t, datetime):
                if f.folder_date is None:
                    assert t < cutoff
                else:
                    assert t.date() == f.folder_date
            else:  # fx_rates: the rate of that day
                assert (t < cutoff.date()) if f.folder_date is None else t == f.folder_date
        if f.folder_date is not None and f.entity.name == "deals":
            changed_in_day_folders += len(f.rows)
    assert changed_in_day_folders > 0


def test_records_have_several_versions(pair, tools):
    _, nightly, _ = pair
    files = tools.drop_files(nightly)
    seen = Counter()
    for f in files:
        if f.entity.name in ("deals", "subscriptions", "invoices"):
            seen.update((f.entity.name, r[f.entity.key[0]]) for _, r in f.rows)
    versions = Counter(name for (name, _), n in seen.items() if n > 1)
    assert versions["deals"] > 0 and versions["invoices"] > 0


def test_base_plus_days_is_the_full_export(pair, tools):
    full, nightly, _ = pair
    a = tools.latest_state(tools.drop_files(full))
    b = tools.latest_state(tools.drop_files(nightly))
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_too_many_nightly_days_is_refused(tmp_path):
    with pytest.raises(ValueError, match="nightly_days"):
        generate_company(tmp_path, accounts=1, nightly_days=61)
