"""The package's layers, checked on its source: no import circle, no arrow from a lower layer to a
higher one, and every `B2B_*` setting read in the settings module only.

Every import counts, the ones inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "plugins" / "b2b_pipeline"
SETTINGS = "b2b_pipeline.config"
# Python files outside the package that must not read settings either: the DAG and the Airflow plugin
OTHER_CODE = (*sorted((REPO / "dags").glob("*.py")), *sorted((REPO / "plugins").glob("*.py")))

# lowest first; a module belongs to the layer of its longest matching prefix
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("settings", ("b2b_pipeline.config",)),
    (
        "foundation",
        (
            "b2b_pipeline.warehouse",
            "b2b_pipeline.files",
            "b2b_pipeline.page_style",
            "b2b_pipeline.stages",
            "b2b_pipeline.night",
        ),
    ),
    ("warehouse state", ("b2b_pipeline.night_lock", "b2b_pipeline.publish")),
    (
        "sources and transform",
        ("b2b_pipeline.filedrop", "b2b_pipeline.generate", "b2b_pipeline.sources", "b2b_pipeline.transform"),
    ),
    ("quality", ("b2b_pipeline.quality",)),
    ("reporting", ("b2b_pipeline.reporting",)),
    ("the night's steps", ("b2b_pipeline.nightly",)),
    ("orchestration", ("b2b_pipeline.orchestration", "b2b_pipeline.bench")),
    ("command line", ("b2b_pipeline.cli", "b2b_pipeline.cli_support", "b2b_pipeline.quality.commands")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def packages() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("__init__.py")}


def imports(tree: ast.Module, known: set[str], importer: str = "") -> Iterator[tuple[str, int]]:
    """The package's modules `tree` (the module `importer`) imports, relative imports resolved
    (`from b2b_pipeline.x import y` counts `b2b_pipeline.x.y` when that is a module), with the line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # the importer's package (a package's __init__ is its own package), then up
                package = importer.split(".") if importer in packages() else importer.split(".")[:-1]
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name in known:
                yield name, node.lineno


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def graph() -> dict[str, dict[str, int]]:
    trees = modules()
    known = set(trees)
    edges: dict[str, dict[str, int]] = {}
    for name, tree in trees.items():
        targets = edges.setdefault(name, {})
        for target, line in imports(tree, known, name):
            if target != name and not name.startswith(target + "."):  # a package's own __init__
                targets.setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if m != "b2b_pipeline" and layer_of(m) < 0] == []


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_no_lower_layer_imports_a_higher_one() -> None:
    wrong = [
        f"{source} (layer {LAYERS[layer_of(source)][0]}) imports {target} (layer {LAYERS[layer_of(target)][0]}) "
        f"on line {line}"
        for source, targets in graph().items()
        if source != "b2b_pipeline"
        for target, line in targets.items()
        if target != "b2b_pipeline" and layer_of(target) > layer_of(source)
    ]
    assert wrong == []


def _reads_b2b_variable(node: ast.AST) -> bool:
    """A read of the environment whose name is a "B2B_..." literal or a name of this codebase's
    style for one (`*_ENV`, `ENV_*`): `os.environ.get(X)`, `.setdefault`, `.pop`, `os.getenv(X)`,
    `environ[X]`, `X in os.environ` (also with `from os import environ, getenv`)."""

    def is_b2b(arg: ast.AST) -> bool:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value.startswith("B2B_")
        name = getattr(arg, "id", None) or getattr(arg, "attr", None) or ""
        return name.endswith("_ENV") or name.startswith("ENV_")

    def is_environ(value: ast.AST) -> bool:
        return (isinstance(value, ast.Attribute) and value.attr == "environ") or (
            isinstance(value, ast.Name) and value.id == "environ"
        )

    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop") and is_environ(func.value):
            return is_b2b(node.args[0])
        if (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        ):
            return is_b2b(node.args[0])
    if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
        return is_b2b(node.slice)
    if isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
        return is_b2b(node.left) and any(is_environ(c) for c in node.comparators)
    return False


def test_settings_are_read_in_the_settings_module_only() -> None:
    trees = {name: tree for name, tree in modules().items() if name != SETTINGS}
    trees |= {str(p.relative_to(REPO)): ast.parse(p.read_text(encoding="utf-8")) for p in OTHER_CODE}
    readers = [
        f"{name} line {node.lineno}"
        for name, tree in trees.items()
        for node in ast.walk(tree)
        if _reads_b2b_variable(node)
    ]
    assert readers == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.environ.get('B2B_HOME')", True),
        ("import os\nos.getenv(SOURCE_DIR_ENV)", True),
        ("import os\nos.environ['B2B_X']", True),
        ("import os\nos.environ.get('PATH')", False),
        ("import os\nos.environ['B2B_X'] = '1'", False),  # setting one for a child process is not reading it
        ("from os import environ\nenviron.get('B2B_HOME')", True),
        ("from os import getenv\ngetenv('B2B_HOME')", True),
        ("import os\n'B2B_HOME' in os.environ", True),
        ("import os\nos.environ.setdefault(ENV_HOST, 'x')", True),
    ],
)
def test_the_settings_check_can_fail(source: str, expected: bool) -> None:
    assert any(_reads_b2b_variable(node) for node in ast.walk(ast.parse(source))) is expected


def test_the_layer_checks_can_fail() -> None:
    edges = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(edges) == [["a", "b", "c"]]
    known = {"b2b_pipeline.reporting", "b2b_pipeline.reporting.sales_report", "b2b_pipeline.filedrop.spec"}
    relative = ast.parse("from ..reporting import sales_report\nfrom . import spec")
    assert sorted(imports(relative, known, "b2b_pipeline.filedrop.loader")) == [
        ("b2b_pipeline.filedrop.spec", 2),
        ("b2b_pipeline.reporting", 1),
        ("b2b_pipeline.reporting.sales_report", 1),
    ]
    assert (
        layer_of("b2b_pipeline.quality.commands")
        > layer_of("b2b_pipeline.nightly")
        > layer_of("b2b_pipeline.quality.gate")
    )
