"""Same seed and arguments: the same bytes. Another seed: other data."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from b2b_pipeline.generate import generate_company

ARGS = {"accounts": 120, "nightly_days": 2, "gzip": True, "error_rate": 0.02, "start": date(2025, 1, 1)}


def digests(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    a = generate_company(tmp_path / "a", seed=5, **ARGS)
    b = generate_company(tmp_path / "b", seed=5, **ARGS)
    da, db = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(da) > 12 and da == db
    assert a.rows == b.rows and a.bad_rows == b.bad_rows


def test_other_seed_other_data(tmp_path):
    generate_company(tmp_path / "a", seed=5, **ARGS)
    generate_company(tmp_path / "c", seed=6, **ARGS)
    da, dc = digests(tmp_path / "a"), digests(tmp_path / "c")
    # the pipeline stages are the seller's fixed set-up; everything else depends on the seed
    same = [k for k in da.keys() & dc.keys() if da[k] == dc[k] and not k.endswith("stages.csv.gz")]
    assert same == []


def test_plain_files_are_deterministic_too(tmp_path):
    generate_company(tmp_path / "a", seed=9, accounts=40)
    generate_company(tmp_path / "b", seed=9, accounts=40)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_gzip_header_has_no_time_and_no_name(tmp_path):
    summary = generate_company(tmp_path, seed=1, accounts=20, gzip=True, nightly_days=1)
    assert summary.files and all(p.name.endswith(".gz") for p in summary.files)
    for p in summary.files:
        head = p.read_bytes()[:10]
        assert head[:3] == b"\x1f\x8b\x08"
        assert head[3] & 0x08 == 0, f"{p}: file name in the gzip header"
        assert head[4:8] == b"\0\0\0\0", f"{p}: modification time in the gzip header"


def test_regenerating_replaces_a_generated_drop(tmp_path):
    generate_company(tmp_path, seed=2, accounts=30, nightly_days=3)
    generate_company(tmp_path, seed=2, accounts=30)
    assert not [p for p in (tmp_path / "crm").iterdir() if p.is_dir()]
    generate_company(tmp_path / "fresh", seed=2, accounts=30)
    assert digests(tmp_path / "fresh") == {k: v for k, v in digests(tmp_path).items() if not k.startswith("fresh/")}


def test_a_foreign_drop_is_not_overwritten(tmp_path):
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "deals.csv").write_text("deal_id\n1\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        generate_company(tmp_path, accounts=1)
    assert (tmp_path / "crm" / "deals.csv").read_text(encoding="utf-8") == "deal_id\n1\n"


def test_progress_is_reported(tmp_path):
    calls = []
    generate_company(tmp_path, seed=1, accounts=250, start=date(2026, 1, 1), progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 250) and calls[-1] == (250, 250)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) >= 50


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accounts": -1},
        {"error_rate": -0.1},
        {"error_rate": 0.9},
        {"start": date(2026, 1, 2), "end": date(2026, 1, 1)},
        {"start": date(2026, 1, 1), "end": date(2026, 1, 10), "nightly_days": 10},
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_company(tmp_path, **kwargs)
