"""Errors in production mode (TESTING off): every layer answers RFC 9457 problem+json, and the
app refuses to start with a weak signing key."""

import io
import os
import stat

import pytest
from hand_signed import claims_for, sign
from helpers import (
    API,
    PASSWORD,
    assert_problem,
    assert_unauthorized,
    bearer,
    log_in,
    register,
)
from sql_capture import captured_statements

import api.accounts

USERS = f"{API}/users"
SESSIONS = f"{API}/sessions"
ME = f"{USERS}/me"
UNREACHABLE_DB = "postgresql+psycopg://coffer@127.0.0.1:9/coffer"


@pytest.fixture
def production(make_app):
    """Build a production-mode app (Flask's exception propagation off)."""

    def factory(**overrides):
        return make_app(TESTING=False, COFFER_ENV="production", **overrides)

    return factory


@pytest.fixture
def client(production):
    return production().test_client()


@pytest.mark.parametrize("path", [f"{API}/nope", "/nope", f"{USERS}/not-a-uuid"])
def test_unknown_route_is_404(client, path):
    assert_problem(client.get(path), 404)


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("put", USERS, {"GET", "POST"}),
        ("put", ME, {"GET", "PATCH", "DELETE"}),
        ("get", f"{SESSIONS}/refresh", {"POST"}),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert_problem(response, 405)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_malformed_json_is_400(client):
    response = client.post(USERS, data="{nope", content_type="application/json")
    assert_problem(response, 400)


def test_wrong_content_type_is_415(client):
    response = client.post(USERS, data="email=ada@example.com", content_type="text/plain")
    assert_problem(response, 415)


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", USERS),
        ("post", SESSIONS),
        ("post", f"{SESSIONS}/refresh"),
        ("patch", ME),
        ("delete", ME),
        ("put", f"{ME}/password"),
    ],
)
def test_every_body_route_refuses_bad_bodies(client, accounts, method, path):
    headers = accounts.create().headers
    send = getattr(client, method)
    assert_problem(send(path, data="{nope", content_type="application/json", headers=headers), 400)
    assert_problem(send(path, data="a=b", content_type="text/plain", headers=headers), 415)
    assert_problem(send(path, data="[1, 2]", content_type="application/json", headers=headers), 422)


TOO_LARGE = "The request body is larger than 1024 bytes (COFFER_MAX_BODY_BYTES)."


def test_body_over_the_limit_is_413_naming_the_limit(production):
    client = production(COFFER_MAX_BODY_BYTES=1024).test_client()
    body = {"email": "ada@example.com", "password": PASSWORD, "name": "x" * 4096}
    assert assert_problem(client.post(USERS, json=body), 413)["detail"] == TOO_LARGE


def post_chunked(client, path: str, body: bytes, headers: dict):
    """POST without Content-Length, as a server passes on a chunked body (a terminated stream)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked", **headers},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("key", [None, "chunked-1"], ids=["plain", "idempotent"])
def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(production, accounts, key):
    app = production(COFFER_MAX_BODY_BYTES=1024)
    client = app.test_client()
    headers = {**accounts.create().headers, **({"Idempotency-Key": key} if key else {})}
    things = f"{API}/data/things"
    body = b'{"data": {"x": 1}}'  # still valid JSON when cut at the limit
    with captured_statements(app) as statements:
        response = post_chunked(client, things, body + b" " * 1024, headers)
    assert assert_problem(response, 413)["detail"] == TOO_LARGE
    # Refused before anything is written: the Idempotency-Key is not even claimed.
    writes = ("INSERT INTO records", "INSERT INTO idempotency_keys")
    assert not [sql for sql, _ in statements if any(write in sql for write in writes)]
    assert client.get(things, headers=headers).get_json()["items"] == []
    at_the_limit = post_chunked(client, things, body + b" " * (1024 - len(body)), headers)
    assert at_the_limit.status_code == 201


@pytest.mark.parametrize("body", ["[1, 2]", '"ada@example.com"', "3", "null"])
def test_a_body_that_is_not_a_json_object_is_422_saying_so(client, body):
    response = client.post(USERS, data=body, content_type="application/json")
    problem = assert_problem(response, 422)
    assert problem["detail"] == "The request body must be a JSON object."
    assert problem["errors"] == {"_schema": ["The request body must be a JSON object."]}


@pytest.mark.parametrize("path", ["/healthz", f"{API}/nope"])
def test_json_bodies_end_with_a_newline(client, path):
    body = client.get(path).get_data()
    assert body.endswith(b"}\n") and body.count(b"\n") == 1


def test_validation_error_is_422_with_errors(client):
    response = client.post(USERS, json={"email": "not-an-email", "password": PASSWORD})
    body = assert_problem(response, 422)
    assert isinstance(body["errors"]["email"], list) and body["errors"]["email"]


def test_query_validation_error_is_a_problem(client, accounts):
    user = accounts.create()
    assert_problem(client.get(f"{SESSIONS}?limit=0", headers=user.headers), 422)
    assert_problem(client.get(f"{SESSIONS}?limit=abc", headers=user.headers), 400)


def test_conflict_is_409(client):
    assert register(client, "ada@example.com").status_code == 201
    assert_problem(register(client, "ada@example.com"), 409)


def test_missing_token_is_401_with_a_challenge(client):
    assert_unauthorized(client.get(ME))


def test_wrong_role_is_403(client, accounts):
    user = accounts.create()
    assert_problem(client.get(USERS, headers=user.headers), 403)


def test_crash_in_a_plain_route_is_500_without_details(production):
    app = production()

    def boom():
        raise RuntimeError("secret internals at /srv/coffer/api/boom.py")

    app.add_url_rule("/boom", view_func=boom)
    response = app.test_client().get("/boom")
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    assert "errors" not in body


def test_crash_inside_a_resource_is_500_without_details(client, monkeypatch):
    def broken(email):
        raise RuntimeError("secret internals at /srv/coffer/api/accounts.py")

    monkeypatch.setattr(api.accounts, "find_user", broken)
    response = log_in(client, "ada@example.com")
    assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)


def test_unreachable_database_is_503_with_retry_after(production):
    app = production(DATABASE_URL=UNREACHABLE_DB)
    client = app.test_client()
    login = log_in(client, "ada@example.com")
    assert_problem(login, 503)
    assert int(login.headers["Retry-After"]) > 0
    me = client.get(ME, headers=bearer(sign(app, claims_for(app))))
    assert_problem(me, 503)
    assert int(me.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "changeme",
        "secret",
        "s3cr3t-but-short",
        "x" * 64,
        "my-very-long-production-secret-key-0123456789",
        "please-change-me-before-deploying-0123456789",
    ],
)
def test_production_refuses_a_missing_or_weak_secret_key(make_app, key):
    with pytest.raises(RuntimeError, match="COFFER_SECRET_KEY"):
        make_app(TESTING=False, COFFER_ENV="production", COFFER_SECRET_KEY=key)


def test_production_starts_with_a_strong_secret_key(make_app):
    key = "Zq7Wm2Lx9Pv4Nc8Rt1Yb6Hd3Kf5Gs0Ja"
    app = make_app(TESTING=False, COFFER_ENV="production", COFFER_SECRET_KEY=key)
    assert app.test_client().get("/healthz").status_code == 200


def test_development_generates_a_private_key_once_and_reuses_it(make_app, tmp_path):
    instance = tmp_path / "instance"
    first = make_app(COFFER_SECRET_KEY=None, instance_path=str(instance))
    key_file = instance / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = first.config["COFFER_SECRET_KEY"]
    assert key == key_file.read_text().strip() and len(key) >= 64
    second = make_app(COFFER_SECRET_KEY=None, instance_path=str(instance))
    assert second.config["COFFER_SECRET_KEY"] == key
    assert [p.name for p in instance.iterdir() if p.name.startswith("secret")] == ["secret_key"]
    client = first.test_client()
    assert register(client, "ada@example.com").status_code == 201
    tokens = log_in(client, "ada@example.com").get_json()
    headers = bearer(tokens["access_token"])
    assert second.test_client().get(ME, headers=headers).status_code == 200


def test_a_configured_key_is_used_as_given(make_app, tmp_path):
    instance = tmp_path / "instance"
    key = "Zq7Wm2Lx9Pv4Nc8Rt1Yb6Hd3Kf5Gs0Ja"
    app = make_app(COFFER_SECRET_KEY=key, instance_path=str(instance))
    assert app.config["COFFER_SECRET_KEY"] == key
    assert not (instance / "secret_key").exists()
