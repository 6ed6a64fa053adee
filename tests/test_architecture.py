"""The package layout keeps its promises (docs/design.md §1): stages import only earlier stages,
no package has an import cycle, and no module grows past what one can read in a sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vlsurgery"

#: Each top-level part of vlsurgery and its stage; a module may import its own stage and earlier ones.
STAGES = {
    "errors": 0, "resources": 0, "caches": 0, "render": 0, "lazy": 0,
    "methods": 1, "profiles": 1, "data": 1,
    "spec": 2,
    "planning": 3,
    "compiler": 4, "search": 4,
    "diff": 5,
    "checkpoint": 6, "draw": 6,
    "training": 7,
    "testing": 8, "cli": 8, "__init__": 8,
}
MAX_LINES = 400


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


KNOWN_NAMES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
               for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """Every vlsurgery module a module imports, at its top or inside a function."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from vlsurgery import caches` imports the module vlsurgery.caches
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in KNOWN_NAMES else base)
    return {m for m in out if m == "vlsurgery" or m.startswith("vlsurgery.")}


MODULES = dict(_modules())
KNOWN = set(MODULES)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_stage():
    assert {_part(m) for m in MODULES} <= set(STAGES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_from_a_later_stage(name):
    mine = STAGES[_part(name)]
    later = sorted(m for m in _imports(name, MODULES[name]) if m in KNOWN and STAGES[_part(m)] > mine)
    assert not later, f"{name} (stage {mine}) imports later stages: {later}"


def test_no_import_cycle_inside_a_package():
    graph = {name: {m for m in _imports(name, path) if m in KNOWN and m != name and _part(m) == _part(name)
                    and m != f"vlsurgery.{_part(name)}"}
             for name, path in MODULES.items()}
    done, path = set(), []

    def visit(node):
        if node in path:
            cycle = path[path.index(node):] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_short(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it along a real seam"


#: Notes of the project's authors that users of the repository do not have (spelt in pieces so
#: that this file does not cite them either).
PRIVATE = ("shared/" + "reference", "vl-pet" + ".md", "compiler-" + "notes")
SHIPPED = sorted([*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "docs").glob("*.md"), PACKAGE.parent / "README.md",
                  *(PACKAGE.parent / "specs").rglob("*.vls"), *(PACKAGE.parent / "tests").rglob("*.py")])


def test_the_repository_cites_only_what_it_ships():
    cites = [f"{p.relative_to(PACKAGE.parent)}: {name}" for p in SHIPPED for name in PRIVATE if name in p.read_text()]
    assert not cites, "cite docs/paper.md or docs/design.md instead: " + ", ".join(cites)
