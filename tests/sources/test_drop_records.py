"""The fakes serve a drop's well-formed rows only: every way the generator breaks a row on purpose
(the loader quarantines each) is refused, and the generator's good rows are all kept."""

from __future__ import annotations

import csv
import json
import random
from datetime import date
from pathlib import Path

import pytest

from b2b_pipeline.filedrop.spec import ENTITIES
from b2b_pipeline.generate import generate_company
from b2b_pipeline.generate.errors import corrupt, corruptions
from b2b_pipeline.sources.drop_records import well_formed

CRM = [e for e in ENTITIES if e.system == "crm"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    out = tmp_path_factory.mktemp("records")
    generate_company(out, seed=3, accounts=6, start=date(2026, 8, 1), end=date(2026, 9, 30))
    found: dict[str, list[dict[str, str]]] = {}
    for entity in CRM:
        path = next((Path(out) / "crm").glob(f"{entity.name}.*"))
        with path.open(encoding="utf-8-sig", newline="") as f:
            if path.suffix == ".jsonl":
                found[entity.name] = [
                    {k: "" if v is None else str(v) for k, v in json.loads(line).items()} for line in f if line.strip()
                ]
            else:
                found[entity.name] = list(csv.DictReader(f))
    return found


@pytest.mark.parametrize("entity", CRM, ids=lambda e: e.name)
def test_good_rows_are_kept_and_every_corruption_refused(entity, rows) -> None:
    good = rows[entity.name]
    assert good, entity.name
    assert all(well_formed(entity, row) for row in good)
    rng = random.Random(7)
    kinds = corruptions(entity)
    refused = 0
    for i in range(200):
        bad = corrupt(rng, entity, good[i % len(good)])
        if bad != good[i % len(good)]:
            assert not well_formed(entity, bad), (
                entity.name,
                {k: v for k, v in bad.items() if v != good[i % len(good)][k]},
            )
            refused += 1
    assert refused > 0 or not kinds


def test_a_timestamp_with_a_zone_name_is_refused(rows) -> None:
    users = next(e for e in CRM if e.name == "users")
    row = dict(rows["users"][0])
    assert well_formed(users, row)
    row["updated_at"] = "2026-09-01 10:00:00 Europe/Moscow"
    assert not well_formed(users, row)
    row["updated_at"] = "2026-09-01T10:00:00+03:00"
    assert well_formed(users, row)
