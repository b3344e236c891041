"""The documentation in the repository: docs/metrics.md names exactly the marts and columns that a night publishes
(with their types), and no document links outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from nights import ReferenceNight  # tests/nights.py

ROOT = Path(__file__).resolve().parents[1]
METRICS = ROOT / "docs" / "metrics.md"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "dbt_project" / "README.md"]

_MART = re.compile(r"^### `marts\.(\w+)`\s*$")
_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*([^|]+?)\s*\|")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def documented_marts(text: str) -> dict[str, dict[str, str]]:
    """mart -> {column: type} from the `### \\`marts.<name>\\`` sections and the first table of each."""
    marts: dict[str, dict[str, str]] = {}
    mart, table_done = None, False
    for line in text.splitlines():
        heading = _MART.match(line)
        if heading:
            mart, table_done = heading[1], False
            assert mart not in marts, f"marts.{mart} is documented twice"
            marts[mart] = {}
            continue
        if line.startswith("#"):
            mart = None
            continue
        if mart is None or table_done:
            continue
        row = _ROW.match(line)
        if row:
            marts[mart][row[1]] = row[2].strip().lower()
        elif marts[mart] and not line.startswith("|"):
            table_done = True  # the first table of the section is the columns
    return marts


def published_marts(dsn: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
            " from pg_attribute a join pg_class c on c.oid = a.attrelid"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'marts' and c.relkind in ('r', 'v', 'm', 'p') and a.attnum > 0"
            " and not a.attisdropped order by 1, a.attnum"
        ).fetchall()
    marts: dict[str, dict[str, str]] = {}
    for table, column, type_ in rows:
        marts.setdefault(table, {})[column] = type_
    return marts


def test_the_parser_reads_marts_columns_and_types() -> None:
    text = "## Marts\n\n### `marts.a`\n\nGrain: x.\n\n| column | type | meaning |\n|---|---|---|\n"
    text += "| `m` | date | d |\n| `n` | Numeric | r |\n\nprose | `not_a_column` | x |\n\n### `marts.b`\n"
    text += "| `k` | text | k |\n\n## Other\n| `z` | text | z |\n"
    assert documented_marts(text) == {"a": {"m": "date", "n": "numeric"}, "b": {"k": "text"}}


@pytest.mark.integration
def test_metrics_doc_names_every_published_mart_and_column(reference_night: ReferenceNight) -> None:
    """A mart or a column that a night publishes but docs/metrics.md does not name, or the other way round, or a
    column whose documented type is not the published one, fails."""
    documented = documented_marts(METRICS.read_text(encoding="utf-8"))
    published = published_marts(reference_night.dsn)
    assert published, "the reference night published no marts"
    assert sorted(documented) == sorted(published), "marts in docs/metrics.md != marts published"
    for mart, columns in published.items():
        missing = [c for c in columns if c not in documented[mart]]
        extra = [c for c in documented[mart] if c not in columns]
        assert not missing and not extra, f"marts.{mart}: undocumented {missing}, documented but absent {extra}"
        wrong = {c: (documented[mart][c], t) for c, t in columns.items() if documented[mart][c] != t}
        assert not wrong, f"marts.{mart}: (documented, published) types differ: {wrong}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_leaves_the_repository(document: Path) -> None:
    """Relative links resolve inside the repository to a file that exists; nothing points at ../shared or the web."""
    text = document.read_text(encoding="utf-8")
    assert "shared/spec" not in text, f"{document.name} refers to the contracts outside the repository"
    for target in _LINK.findall(text):
        assert not re.match(r"[a-z]+://", target), f"{document.name}: link out of the repository: {target}"
        if target.startswith("#"):
            continue
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"{document.name}: link out of the repository: {target}"
        assert path.exists(), f"{document.name}: broken link {target}"
