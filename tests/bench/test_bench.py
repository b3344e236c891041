"""`b2b bench --sizes S` as CI's smoke test: the whole harness on the small company, through the real DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

B2B = str(Path(sys.executable).with_name("b2b"))


def test_bench_s_measures_load_nights_gate_and_memory(admin_dsn: str, tmp_path: Path) -> None:
    if "host=/" not in admin_dsn:  # two whole nights and a load benchmark: once is enough
        pytest.skip("the benchmark smoke test runs on the embedded warehouse")
    cache, out = Path("cache"), tmp_path / "out"  # a relative cache, as `make bench` passes it
    env = {**os.environ, "B2B_HOME": str(tmp_path / "home"), "B2B_WAREHOUSE_DSN": admin_dsn}
    done = subprocess.run(
        [B2B, "bench", "--sizes", "S", "--cache", str(cache), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    [json_path] = out.glob("bench-*.json")
    report = json.loads(json_path.read_text())
    [s] = report["sizes"]
    assert s["size"] == "S" and s["accounts"] == 2_000 and s["rows"] > 100_000
    # the load benchmark took every row of the base drop both ways
    load = s["load"]["all"]
    assert load["rows"] > 100_000 and load["ratio"] > 0 and set(s["load"]["by_format"]) == {"csv", "jsonl"}
    # every night went through the DAG and published
    for night in ("full_night", "second_night", "increment"):
        assert s[night]["state"] == "published", s[night]
        assert s[night]["wall_seconds"] > 0 and s[night]["steps_seconds"]["dbt"] > 0
        # the dbt step split into its one build, its test task and the models' tasks
        parts = s[night]["dbt_seconds"]
        assert set(parts) == {"build", "tests", "model tasks"} and all(v > 0 for v in parts.values())
        assert abs(sum(parts.values()) - s[night]["steps_seconds"]["dbt"]) < 0.05
    assert 0 < s["increment"]["rows"] < s["rows"] / 50
    assert 0 < s["full_night"]["gate_share"] < 1
    assert max(s["peak_rss_mb"].values()) > 50
    assert report["dag_parse_seconds"] > 0  # measured, not held to a time: benchmarks measure, tests do not time
    # the base drop links resolve although the cache path was relative
    base = tmp_path / cache / "S-2000-seed42" / "base" / "crm"
    assert all(link.resolve().is_file() for link in base.iterdir())
    markdown = json_path.with_suffix(".md").read_text()
    assert "| S | 2,000 |" in markdown and "Results:" in done.stdout
