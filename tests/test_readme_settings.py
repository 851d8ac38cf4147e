"""The README's configuration tables and the code's settings cannot drift apart.

The README's "## Configuration" section has two tables. The first lists exactly the variables of
api/config.py's SETTINGS; the second exactly the ones that gunicorn.conf.py reads from the
environment and the app does not. A default stated as one literal (`900`, `10/minute`, `*`,
`false`) must be the code's default as the environment would spell it. `unset`, or words
("generated once into `instance/secret_key`", 2 × cores + 1), may stand only where the code has
no literal default: SETTINGS' None (the app derives a value at start-up, or goes without), or an
expression in gunicorn.conf.py.
"""

import ast
import re
from pathlib import Path

import pytest

from api.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")
LITERAL = re.compile(r"`([^`]+)`")
DERIVED = object()  # a default the code computes: no literal to compare


def configuration_tables(text: str) -> list[list[list[str]]]:
    """The tables of the README's Configuration section: rows of cells, without the header."""
    section = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, 'the README has no "## Configuration" section'
    tables: list[list[list[str]]] = []
    previous = ""
    for line in section.group(1).splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            tables.append([])  # the header row
        elif line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            tables[-1].append([cell.strip() for cell in cells])
        previous = line
    return tables


def documented(rows: list[list[str]]) -> dict[str, str]:
    """Variable -> the README's default for it. `A` / `B` rows split their defaults the same
    way when they have as many parts; else the one default is both's."""
    found: dict[str, str] = {}
    for cells in rows:
        parts = [part.strip() for part in cells[0].split(" / ")]
        names = [NAME.fullmatch(part) for part in parts]
        assert all(names), f"a configuration row names no variable: {cells[0]!r}"
        defaults = [part.strip() for part in cells[1].split(" / ")]
        if len(defaults) != len(names):
            defaults = [cells[1]] * len(names)
        for name, default in zip((match[1] for match in names), defaults, strict=True):
            assert name not in found, f"{name} has two rows in the README's configuration tables"
            found[name] = default
    return found


def gunicorn_environment() -> dict[str, object]:
    """What gunicorn.conf.py reads from the environment: name -> default (DERIVED when it is
    computed, None when there is none)."""
    found: dict[str, object] = {}
    for node in ast.walk(ast.parse(GUNICORN_CONF.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            name, default = node.args[0].value, node.args[1] if len(node.args) > 1 else None
            if isinstance(default, ast.Constant):
                found[name] = default.value
            else:
                found[name] = None if default is None else DERIVED
    return found


def readme_tables() -> tuple[dict[str, str], dict[str, str]]:
    tables = configuration_tables(README.read_text())
    assert len(tables) == 2, f"the Configuration section should have 2 tables, not {len(tables)}"
    return documented(tables[0]), documented(tables[1])


def spelled(default: object) -> str:
    """A default as the environment spells it: `900`, `10/minute`, `false`."""
    return str(default).lower() if isinstance(default, bool) else str(default)


def default_problem(name: str, readme: str, code: object, source: str) -> str | None:
    """How the README's default for `name` misstates the code's, or None."""
    literal = LITERAL.fullmatch(readme)
    if code is None or code is DERIVED:
        if literal:
            return f"{name}: the README states `{literal[1]}`, {source} has no literal default"
        return None
    if not literal or literal[1] != spelled(code):
        return f"{name}: the README says {readme}, {source}'s default is `{spelled(code)}`"
    return None


def test_the_settings_table_lists_exactly_the_settings_of_api_config():
    settings, _ = readme_tables()
    missing = sorted(SETTINGS.keys() - settings.keys())
    unknown = sorted(settings.keys() - SETTINGS.keys())
    assert not missing, f"api/config.py's SETTINGS has {missing}; the README's table lacks them"
    assert not unknown, f"the README's settings table lists {unknown}; SETTINGS has no such"


def test_the_settings_table_states_the_defaults_of_api_config():
    settings, _ = readme_tables()
    problems = [
        default_problem(name, settings[name], default, "api/config.py")
        for name, (_kind, default) in SETTINGS.items()
        if name in settings
    ]
    problems = [problem for problem in problems if problem]
    assert not problems, "\n".join(problems)


def test_the_server_table_lists_what_gunicorn_conf_reads_with_its_defaults():
    _, server = readme_tables()
    reads = {k: v for k, v in gunicorn_environment().items() if k not in SETTINGS}
    assert reads, "gunicorn.conf.py reads no environment variable any more?"
    missing = sorted(reads.keys() - server.keys())
    unknown = sorted(server.keys() - reads.keys())
    assert not missing, f"gunicorn.conf.py reads {missing}; the README's gunicorn table lacks them"
    assert not unknown, f"the README's gunicorn table lists {unknown}; gunicorn.conf.py reads none"
    problems = [default_problem(k, server[k], v, "gunicorn.conf.py") for k, v in reads.items()]
    problems = [problem for problem in problems if problem]
    assert not problems, "\n".join(problems)


def test_every_coffer_variable_the_readme_names_exists():
    named = set(re.findall(r"\bCOFFER_[A-Z0-9_]+", README.read_text()))
    unknown = sorted(named - SETTINGS.keys() - gunicorn_environment().keys())
    assert not unknown, f"the README names {unknown}, which neither the app nor gunicorn reads"


@pytest.mark.parametrize(
    ("readme", "code", "wrong"),
    [
        ("`10/minute`", "10/minute", False),
        ("`900`", 900, False),
        ("`*`", "*", False),
        ("`false`", False, False),
        ("`False`", False, True),
        ("unset", None, False),
        ("generated once into `instance/secret_key` (mode 0600)", None, False),
        ("2 × cores + 1", DERIVED, False),
        ("`901`", 900, True),
        ("unset", "coffer", True),
        ("about 15 minutes", 900, True),
        ("`instance/jwt-keys`", None, True),
    ],
)
def test_a_stated_default_is_compared_only_where_the_code_has_one(readme, code, wrong):
    assert (default_problem("X", readme, code, "the code") is not None) is wrong
