"""The layers point one way: coffer → resources → (schemas, api.http, core), api.http → core,
schemas → the core's constants and rules only, and the core (the rest of `api`) knows no
request, no Resource, no schema and no app factory.

`coffer` (the app factory, the first admin's bootstrap and the operator's commands) wires all
of it together and may import anything; nothing imports it. Nothing imports in a circle, not
even lazily, and no module grows past ~350 lines.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "resources", "schemas", "coffer")
ALLOWED = {
    "coffer": {"coffer", "resources", "schemas", "http", "core"},
    "resources": {"resources", "schemas", "http", "core"},
    "schemas": {"schemas", "core"},
    "http": {"http", "core"},
    "core": {"core"},
}
# What the core may not import even lazily: only the HTTP layer (api.http) and above may.
FORBIDDEN_IN_CORE = {"resources", "schemas", "coffer", "flask_restful"}
# The core modules a schema may import: constants and rules, themselves importing nothing
# else of the core.
SCHEMA_RULES = {"api.constants", "api.email_address", "api.password_rules", "api.record_rules"}
MAX_LINES = 350


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _layer(module: str) -> str:
    if module == "api.http" or module.startswith("api.http."):
        return "http"
    package = module.split(".")[0]
    return "core" if package == "api" else package


def _imports(module: str) -> set[tuple[str, str | None]]:
    """(imported module, name) pairs of a module, anywhere in it (lazy imports count too)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: a relative import, which this test cannot follow"
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add((child, None) if child in MODULES else (node.module, alias.name))
    return found


def _internal_imports(module: str) -> set[str]:
    """The project's modules that `module` imports."""
    return {name for name, _ in _imports(module) if name in MODULES} - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append(trail[trail.index(node) :] + [node])
            return
        visiting.add(node)
        for dependency in sorted(graph[node]):
            visit(dependency, [*trail, node])
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return cycles


def test_every_package_is_seen():
    assert {"api", "api.http", "resources", "schemas", "coffer", "coffer.cli"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_the_layers_below_it(module):
    layer = _layer(module)
    wrong = {name for name in _internal_imports(module) if _layer(name) not in ALLOWED[layer]}
    assert not wrong, f"{module} ({layer}) must not import {sorted(wrong)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "core"))
def test_the_core_knows_no_request_resource_schema_or_app_factory(module):
    used = {name for name, _ in _imports(module) if name.split(".")[0] in FORBIDDEN_IN_CORE}
    used |= {
        f"{name}.{imported}"
        for name, imported in _imports(module)
        if name == "flask" and imported == "request"
    }
    assert not used, f"{module} imports {sorted(used)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "schemas"))
def test_a_schema_imports_only_the_cores_constants_and_rules(module):
    core = {name for name in _internal_imports(module) if _layer(name) == "core"}
    assert core <= SCHEMA_RULES, f"{module} imports {sorted(core - SCHEMA_RULES)}"


@pytest.mark.parametrize("module", sorted(SCHEMA_RULES))
def test_the_constants_and_rules_import_nothing_heavier(module):
    core = _internal_imports(module)
    assert core <= SCHEMA_RULES, f"{module} imports {sorted(core - SCHEMA_RULES)}"


def test_no_module_imports_itself_in_a_circle():
    cycles = _cycles({module: _internal_imports(module) for module in MODULES})
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_no_package_imports_another_in_a_circle():
    """Between api, api.http, resources, schemas and coffer, counted by layer: the core
    importing resources (say, in a lazy import in a function) closes a circle."""
    graph = {layer: set() for layer in ALLOWED}
    for module in MODULES:
        graph[_layer(module)] |= {_layer(name) for name in _internal_imports(module)}
    graph = {layer: deps - {layer} for layer, deps in graph.items()}
    assert not _cycles(graph), _cycles(graph)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "resources"))
def test_a_resource_writes_no_sql_and_signs_no_token(module):
    imported = _imports(module)
    roots = {name.split(".")[0] for name, _ in imported}
    assert not roots & {"sqlalchemy", "jwt", "flask_sqlalchemy"}, module
    database = {
        (name, what)
        for name, what in imported
        if name in ("api.extensions", "api.database") or name.startswith("api.database.")
    }
    assert not database, f"{module} reaches the database itself: {sorted(database)}"


@pytest.mark.parametrize(
    "path",
    [*sorted(MODULES.values()), ROOT / "wsgi.py"],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_no_module_is_over_350_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it"
