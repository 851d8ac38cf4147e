"""The layers point one way: resources → (schemas, api.http, core), api.http → core,
schemas → core, and the core (the rest of `api`) knows no request, no Resource, no schema.

`coffer` (the app factory and the operator's commands) wires all of it together and may
import anything. Nothing may import in a circle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "resources", "schemas", "coffer")
COMPOSITION = {"coffer", "coffer.cli"}
ALLOWED = {
    "coffer": {"coffer", "resources", "schemas", "http", "core"},
    "resources": {"resources", "schemas", "http", "core"},
    "schemas": {"schemas", "core"},
    "http": {"http", "core"},
    "core": {"core"},
}
FORBIDDEN_IN_CORE = {("flask", "request"), ("flask_restful", None)}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _layer(module: str) -> str:
    if module.startswith("api.http"):
        return "http"
    return "core" if module.split(".")[0] == "api" else module.split(".")[0]


def _imports(module: str) -> set[tuple[str, str | None]]:
    """(imported module, name) pairs of a module, anywhere in it (lazy imports count too)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add((child, None) if child in MODULES else (node.module, alias.name))
    return found


def _internal_imports(module: str) -> set[str]:
    return {name for name, _ in _imports(module) if name in MODULES}


@pytest.mark.parametrize("module", sorted(set(MODULES) - COMPOSITION))
def test_a_module_imports_only_from_the_layers_below_it(module):
    layer = _layer(module)
    wrong = {name for name in _internal_imports(module) if _layer(name) not in ALLOWED[layer]}
    assert not wrong, f"{module} ({layer}) must not import {sorted(wrong)}"


@pytest.mark.parametrize(
    "module", sorted({m for m in MODULES if _layer(m) == "core"} - COMPOSITION)
)
def test_the_core_knows_no_request_and_no_resource(module):
    used = {
        (name, imported)
        for name, imported in _imports(module)
        for forbidden, what in FORBIDDEN_IN_CORE
        if name.split(".")[0] == forbidden and what in (None, imported)
    }
    assert not used, f"{module} imports {sorted(used)}"


def test_no_module_imports_itself_in_a_circle():
    graph = {module: _internal_imports(module) - {module} for module in MODULES}
    visiting, done, cycles = set(), set(), []

    def visit(module: str, trail: list[str]) -> None:
        if module in done:
            return
        if module in visiting:
            cycles.append(trail[trail.index(module) :] + [module])
            return
        visiting.add(module)
        for dependency in sorted(graph[module]):
            visit(dependency, [*trail, module])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "resources"))
def test_a_resource_writes_no_sql_and_signs_no_token(module):
    roots = {name.split(".")[0] for name, _ in _imports(module)}
    assert not roots & {"sqlalchemy", "jwt", "flask_sqlalchemy"}, module
