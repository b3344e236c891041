"""The DAG's dbt manifest: parsed by one process at a time, replaced whole, leftovers of a killed parse removed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from b2b_pipeline.config import dbt_project_dir

pytestmark = [pytest.mark.slow]

ENSURE = (
    "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s');"
    "from b2b_pipeline.transform.manifest import ensure_manifest;"
    "ensure_manifest('postgresql://nobody@127.0.0.1:1/none')"  # dbt parse connects to nothing
)


def test_two_processes_parse_once_and_a_killed_parse_leaves_nothing(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    leftover = project / "target" / ".parse-killed"
    leftover.mkdir(parents=True)
    (leftover / "manifest.json").write_text("{half a manifest")
    env = {**os.environ, "B2B_DBT_PROJECT_DIR": str(project)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", ENSURE], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    said = "\n".join(outputs)
    assert said.count("parsing the dbt project") == 1, said  # the other found it fresh under the lock
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    assert any(key.startswith("model.b2b_pipeline.") for key in manifest["nodes"])
    assert not list((project / "target").glob(".parse-*"))  # the killed parse's folder, and its own, are gone
