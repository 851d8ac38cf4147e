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
    # What the HTTP server itself refuses, and an unavailable database, on every operation.
    assert set(operation_["responses"]) == {"204", "400", "414", "431", "503"}
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


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_the_tags_list_users_and_sessions_first_in_routing_order():
    tags = [tag["name"] for tag in _committed()["tags"]]
    assert tags[:2] == ["users", "sessions"]
    used = {tag for _, _, op in _operations(_committed()) for tag in op["tags"]}
    assert sorted(tags) == sorted(used)


def test_server_level_refusals_are_documented_on_every_operation():
    for path, method, op in _operations(_committed()):
        responses = op["responses"]
        assert {"400", "414", "431"} <= set(responses), (path, method)
        assert "HTTP server" in responses["431"]["description"]
        assert "X-RateLimit-Remaining" not in responses["431"]["headers"]  # refused before


def test_if_match_operations_say_malformed_is_400_and_a_mismatch_412():
    conditional = [
        op
        for _, _, op in _operations(_committed())
        for p in op.get("parameters", ())
        if p["name"] == "If-Match"
    ]
    assert len(conditional) == 3  # PUT, PATCH, DELETE of a record
    for op in conditional:
        assert "malformed If-Match" in op["responses"]["400"]["description"]
        assert "If-Match does not match" in op["responses"]["412"]["description"]


CONFIRMING = {
    ("/api/v1/users/me/password", "put"),
    ("/api/v1/users/me", "patch"),
    ("/api/v1/users/me", "delete"),
    ("/api/v1/users/me/mfa/totp", "post"),
    ("/api/v1/users/me/mfa/totp", "delete"),
    ("/api/v1/users/me/mfa/totp/confirm", "post"),
    ("/api/v1/users/me/mfa/recovery-codes", "post"),
    ("/api/v1/sessions", "post"),
    ("/api/v1/sessions/mfa", "post"),
}


def test_routes_that_check_a_password_or_code_document_the_log_in_limit():
    for path, method, op in _operations(_committed()):
        limited = "account's log-in limit" in op["responses"].get("429", {}).get("description", "")
        assert limited == ((path, method) in CONFIRMING), (path, method)


def test_every_summary_is_one_line_and_more_goes_to_the_description(make_app):
    for path, method, op in _operations(_committed()):
        assert "\n" not in op["summary"] and len(op["summary"]) <= 100, (path, method)
    reset = _committed()["paths"]["/api/v1/password-resets"]["post"]
    assert reset["summary"] == "Mail a password reset link + code to the address"
    assert "whether the address has an account or not" in reset["description"]
    app = make_app()
    app.add_url_rule("/wrapped", view_func=WrappedSummary.as_view("wrapped"))
    with pytest.raises(RuntimeError, match="wrapped: a one-line summary"):
        build_spec(app)


class WrappedSummary(Resource):
    @declare.operation("wrapped")
    @declare.response(None, 204)
    def get(self):
        """A summary that goes on
        over two lines."""


def test_email_fields_say_how_addresses_are_normalised():
    schemas = _committed()["components"]["schemas"]
    for schema in ("UserCreate", "UserSelfUpdate", "UserAdminUpdate", "LoginRequest"):
        described = schemas[schema]["properties"]["email"]["description"]
        assert "NFKC" in described and "lower-cased" in described and "422" in described
    assert (
        "email_verified` becomes false"
        in schemas["UserAdminUpdate"]["properties"]["email"]["description"]
    )
    update_user = _committed()["paths"]["/api/v1/users/{user_id}"]["patch"]
    assert "at once, unconfirmed" in update_user["description"]
    register = _committed()["paths"]["/api/v1/users"]["post"]
    assert "NFKC" in register["description"]


def test_the_refresh_403_names_the_unverified_address_not_a_password():
    refresh = _committed()["paths"]["/api/v1/sessions/refresh"]["post"]
    described = refresh["responses"]["403"]["description"]
    assert "unverified" in described and "password" not in described
