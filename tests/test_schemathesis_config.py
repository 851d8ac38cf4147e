"""schemathesis.toml: every check runs on every operation but the exceptions it names and explains.

.ci/schemathesis runs schemathesis with this file and no `--checks` option, which would
override the per-operation exceptions.
"""

import tomllib
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import CHECKS, is_check_class
from schemathesis.config import SchemathesisConfig

ROOT = Path(__file__).resolve().parent.parent
PHASES = (None, "examples", "coverage", "fuzzing", "stateful")


@pytest.fixture(scope="module")
def schema():
    config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    return schemathesis.openapi.from_path(ROOT / "openapi.yaml", config=config)


@pytest.fixture(scope="module")
def exceptions():
    """operationId -> the check names its `[[operations]]` entry turns off."""
    entries = tomllib.loads((ROOT / "schemathesis.toml").read_text())["operations"]
    return {
        entry["include-operation-id"]: {
            name for name, check in entry.get("checks", {}).items() if not check["enabled"]
        }
        for entry in entries
    }


def check_names():
    return sorted(check.__name__ for check in CHECKS.get_all() if not is_check_class(check))


def operations(schema):
    for result in schema.get_all_operations():
        operation = result.ok()
        yield operation.definition.raw.get("operationId"), operation


def test_every_exception_names_an_operation_of_the_spec(schema, exceptions):
    ids = {
        operation["operationId"]
        for path in schema.raw_schema["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert set(exceptions) <= ids


def test_every_check_runs_where_no_exception_says_otherwise(schema, exceptions):
    names = check_names()
    assert "use_after_free" in names and "object_level_authorization" in names
    for operation_id, operation in operations(schema):
        for phase in PHASES:
            config = schema.config.checks_config_for(operation=operation, phase=phase)
            enabled = {name for name in names if config.get_by_name(name=name).enabled}
            assert set(names) - enabled == exceptions.get(operation_id, set()), (
                operation_id,
                phase,
            )


def test_the_stateful_phase_keeps_the_use_after_free_exceptions(schema, exceptions):
    kept = [op for op, checks in exceptions.items() if "use_after_free" in checks]
    assert {"listUserEvents", "getCollectionPolicy"} <= set(kept)
    for operation_id, operation in operations(schema):
        if operation_id in kept:
            config = schema.config.checks_config_for(operation=operation, phase="stateful")
            assert not config.use_after_free.enabled, operation_id
