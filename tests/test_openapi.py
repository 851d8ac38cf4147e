"""openapi.yaml is the contract: valid, complete, served as committed, and never stale."""

import pytest
import yaml
from flask_restful import Resource
from openapi_spec_validator import validate

from api.http import operation as declare
from api.http.spec import build_spec
from resources.spec import SPEC_FILE


def _committed() -> dict:
    with open(SPEC_FILE) as handle:
        return yaml.safe_load(handle)


def test_committed_spec_equals_the_regenerated_one(app):
    assert _committed() == build_spec(app), "openapi.yaml is stale: run `make openapi`"


def test_spec_is_valid_openapi_3_1():
    spec = _committed()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


UNDOCUMENTED = {("/docs/init.js", "get"), ("/docs/assets/{name}", "get")}  # the page's own


def test_every_route_is_in_the_spec_and_every_spec_path_is_routed(app):
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<uuid:", "{").replace("<string:", "{").replace(">", "}")
        routed |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(path, method) for path, item in _committed()["paths"].items() for method in item}
    assert routed - UNDOCUMENTED == described


class Undeclared(Resource):
    def get(self):
        """A route whose method says nothing of itself."""
        return {}


class Declared(Resource):
    @declare.operation("declared")
    @declare.response(None, 204)
    def get(self):
        """A route declared on its method."""


def test_a_route_whose_method_declares_no_operation_fails_the_build(make_app):
    app = make_app()
    app.add_url_rule("/undeclared", view_func=Undeclared.as_view("undeclared"))
    with pytest.raises(RuntimeError, match=r"GET /undeclared declares no operation"):
        build_spec(app)


def test_a_declared_method_is_documented_from_its_decorators(make_app):
    app = make_app()
    app.add_url_rule("/declared", view_func=Declared.as_view("declared"))
    operation_ = build_spec(app)["paths"]["/declared"]["get"]
    assert operation_["operationId"] == "declared"
    assert operation_["summary"] == "A route declared on its method"
    assert set(operation_["responses"]) == {"204", "414", "503"}
    assert operation_["security"] == []


def test_authentication_and_a_body_imply_their_statuses(app):
    patch = _committed()["paths"]["/api/v1/users/me"]["patch"]
    assert {"400", "401", "413", "415", "422", "429"} <= set(patch["responses"])
    assert patch["security"] == [{"bearerAuth": []}]


def test_every_error_response_is_problem_json():
    for path, item in _committed()["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in response["content"], (path, method)


def test_the_spec_is_served_as_json_and_yaml(client):
    as_json = client.get("/api/v1/openapi.json")
    as_yaml = client.get("/api/v1/openapi.yaml")
    assert as_json.status_code == 200 and as_json.mimetype == "application/json"
    assert as_yaml.status_code == 200 and as_yaml.mimetype == "application/yaml"
    assert as_json.get_json() == yaml.safe_load(as_yaml.data) == _committed()
    assert "no-store" not in as_json.headers.get("Cache-Control", "")
