"""Landing a dlt source in raw_<source>: one row per version, a version seen again stored once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from b2b_pipeline.sources.landing import TokenBucket, land, raw_resource, version_row

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]  # the server too: see tests/conftest.py

T0 = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def _source(records: list[dict]):
    import dlt

    @raw_resource("leads")
    def leads():
        yield [version_row(r["id"], T0, r, is_deleted=bool(r.get("deleted"))) for r in records]

    @dlt.source(name="fake_crm")
    def source():
        return leads

    return source()


def _rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select record_id, is_deleted, doc ->> 'name', updated_at from raw_test.leads "
            "order by record_id, doc ->> 'name'"
        ).fetchall()


def test_versions_land_once_each(warehouse: str, tmp_path: Path) -> None:
    first = [{"id": 1, "name": "Альфа"}, {"id": 2, "name": "Beta"}]
    report = land(warehouse, "test", _source(first), home=tmp_path)
    assert report.rows == {"leads": 2}
    land(warehouse, "test", _source(first), home=tmp_path)  # the lookback re-reads them: nothing new
    land(warehouse, "test", _source([{"id": 2, "name": "Beta 2"}, {"id": 1, "deleted": True}]), home=tmp_path)
    assert _rows(warehouse) == [
        ("1", False, "Альфа", T0),
        ("1", True, None, T0),
        ("2", False, "Beta", T0),
        ("2", False, "Beta 2", T0),
    ]
    with psycopg.connect(warehouse) as conn:
        types = dict(
            conn.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw_test' and table_name = 'leads'"
            ).fetchall()
        )
        loads = conn.execute("select count(*) from raw_test._dlt_loads where status = 0").fetchone()[0]
    assert types["doc"] == "jsonb" and types["updated_at"] == "timestamp with time zone"
    assert types["record_id"] == "character varying" and types["is_deleted"] == "boolean"  # dlt: text is varchar
    assert loads == 3
    from dlt.common.runtime import anon_tracker

    assert anon_tracker._ANON_TRACKER_ENDPOINT is None  # no usage report leaves the machine


def test_a_version_is_its_content() -> None:
    a = version_row(7, T0, {"id": 7, "b": 1, "a": 2})
    assert a["record_id"] == "7"
    assert a["_version"] == version_row("7", T0, {"a": 2, "id": 7, "b": 1})["_version"]
    assert a["_version"] != version_row(7, T0, {"id": 7, "b": 1, "a": 2}, is_deleted=True)["_version"]
    with pytest.raises(ValueError, match="no time zone"):
        version_row(7, datetime(2026, 1, 1), {})


def test_the_token_bucket_spaces_requests() -> None:
    clock = [0.0]
    bucket = TokenBucket(7, 7, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(7 + 14):
        bucket.take()
    assert clock[0] == pytest.approx(2.0)  # a burst of 7 at once, then 7 a second
    assert bucket.waited == pytest.approx(2.0)
    clock[0] += 10  # idle: the bucket refills to its burst, no more
    for _ in range(7):
        bucket.take()
    assert clock[0] == pytest.approx(12.0)
    bucket.take()
    assert clock[0] == pytest.approx(12.0 + 1 / 7)
