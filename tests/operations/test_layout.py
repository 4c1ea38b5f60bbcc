"""The Python package's layout is the one docs/architecture.md draws: every module named in
its folder's row, the floors kept (no import from a lower floor back up, no cycle), and
imports at the top of a module except those of the optional extras."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ingester"

# A module's floor; a module may import its own floor and the ones below it.
FLOORS = {
    "ground": 0,
    "pipeline": 1,
    "clients": 1,
    "install": 2,
    "simulator": 3,
    "demo": 3,
    "door": 4,
}
DOOR = {"ingester.cli", "ingester.commands"}
# What a plain `pip install pgcti` lacks: imported where used, so the service starts without.
OPTIONAL = (
    "ingester.simulator",
    "ingester.demo",
    "ingester.clients.report",
    "ingester.clients.gateway",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> str:
    if module in DOOR:
        return "door"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or parts[1] in FLOORS else "ground"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def own_imports(path: Path) -> tuple[set[str], set[str]]:
    """The package's modules a file imports at its top level, and inside functions."""
    top: set[str] = set()
    inner: set[str] = set()
    tree = ast.parse(path.read_text())
    known = modules()

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            return {a.name for a in node.names if a.name.startswith("ingester")}
        if not (node.module or "").startswith("ingester"):
            return set()
        # `from ingester.pipeline import spool` names a module; `from x import Name` a name.
        found = {f"{node.module}.{a.name}" for a in node.names}
        return {m for m in found if m in known} or {node.module}

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                (inner if nested else top).update(targets(child))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # a type only: no import at run time
            else:
                inside = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                visit(child, inside)

    visit(tree, False)
    return top, inner


def test_every_module_is_named_in_its_folders_row():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(ingester/[a-z_/]*)` \| (.*) \|$", doc, re.MULTILINE))
    assert rows, "no ingester rows in docs/architecture.md's Layout"
    for folder in {p.parent for p in PACKAGE.rglob("*.py")}:
        named = f"{folder.relative_to(ROOT)}/"
        if folder.parent.name == "clients" and folder.name == "web":
            continue  # the pages' package, named as `web/` in clients' row
        assert named in rows, f"{named} has no row in docs/architecture.md"
        files = {p.name for p in folder.glob("*.py")} - {"__init__.py"}
        mentioned = set(re.findall(r"`([a-z_0-9]+\.py)`", rows[named]))
        assert files - mentioned == set(), f"{named}: not named in its row"
        assert mentioned - files == set(), f"{named}: its row names files that do not exist"


def test_no_module_imports_from_a_floor_above_its_own():
    wrong = []
    for name, path in modules().items():
        top, inner = own_imports(path)
        for target in top | inner:
            if FLOORS[floor_of(target)] > FLOORS[floor_of(name)]:
                wrong.append(f"{name} ({floor_of(name)}) imports {target} ({floor_of(target)})")
    assert wrong == []


def test_imports_inside_functions_are_only_the_optional_extras():
    wrong = []
    for name, path in modules().items():
        _, inner = own_imports(path)
        wrong += [f"{name}: {t}" for t in inner if not t.startswith(OPTIONAL)]
    assert wrong == []


def test_the_package_has_no_import_cycle():
    known = modules()

    def with_packages(name: str, targets: set[str]) -> set[str]:
        """Importing a.b.c runs a/__init__ and a/b/__init__ first, unless we are inside them."""
        edges = set(targets)
        for target in targets:
            parts = target.split(".")
            for n in range(2, len(parts)):
                package = ".".join(parts[:n])
                if package in known and not name.startswith(package + "."):
                    edges.add(package)
        return edges - {name}

    graph = {name: with_packages(name, own_imports(path)[0]) for name, path in known.items()}
    on_path: list[str] = []
    done: set[str] = set()
    cycles: list[str] = []

    def walk(node: str) -> None:
        on_path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                cycles.append(" -> ".join([*on_path[on_path.index(nxt) :], nxt]))
            elif nxt not in done:
                walk(nxt)
        on_path.pop()
        done.add(node)

    for name in graph:
        if name not in done:
            walk(name)
    assert cycles == []


def test_the_layout_test_sees_what_it_checks():
    """The checks above would pass on an empty package: they see the real one."""
    found = modules()
    assert {"ingester.pipeline.writer", "ingester.install.doctor", "ingester.clients.watch"} <= set(
        found
    )
    top, _ = own_imports(found["ingester.pipeline.writer"])
    assert "ingester.pipeline.spool" in top and "ingester.queries" in top
    assert (
        floor_of("ingester.frame") == "ground"
        and floor_of("ingester.pipeline.transports.common") == "pipeline"
    )
    _, inner = own_imports(found["ingester.commands"])
    assert any(t.startswith("ingester.demo") for t in inner), "the demo is imported where used"
