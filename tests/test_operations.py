"""Liveness, readiness, request ids, security headers and CORS."""

import pytest
from helpers import PASSWORD, register

UNREACHABLE_DB = "postgresql+psycopg://coffer@127.0.0.1:9/coffer"


def test_healthz_is_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["database"] == "ok"


def test_readyz_is_503_problem_when_the_database_is_unreachable(make_app):
    app = make_app(DATABASE_URL=UNREACHABLE_DB, TESTING=False)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"]
    body = response.get_json()
    assert body["status"] == 503 and "database" in body["detail"]


def test_request_id_is_echoed_when_sane(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("sent", ["", "x" * 200, "bad id\twith spaces", "<script>"])
def test_request_id_is_generated_when_missing_or_insane(client, sent):
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    generated = response.headers["X-Request-ID"]
    assert generated != sent and len(generated) == 32


def test_error_bodies_carry_the_request_id(client):
    response = client.get("/api/v1/nope", headers={"X-Request-ID": "trace-7"})
    assert response.get_json()["request_id"] == "trace-7"


def test_every_response_is_nosniff_and_api_responses_are_not_cached(client):
    assert client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"
    response = client.get("/api/v1/nope")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def _preflight(client, origin):
    return client.options(
        "/api/v1/users",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )


def test_cors_preflight_from_an_allowed_origin(make_app):
    client = make_app(COFFER_CORS_ORIGINS=["https://app.example"]).test_client()
    response = _preflight(client, "https://app.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key"):
        assert header in allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_cors_preflight_from_a_disallowed_origin_gets_no_allow_origin(make_app):
    client = make_app(COFFER_CORS_ORIGINS=["https://app.example"]).test_client()
    response = _preflight(client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_exposes_the_headers_clients_read(make_app):
    client = make_app(COFFER_CORS_ORIGINS=["https://app.example"]).test_client()
    response = client.get("/api/v1/nope", headers={"Origin": "https://app.example"})
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    for header in ("etag", "location", "link", "retry-after", "x-request-id", "x-ratelimit-limit"):
        assert header in exposed


def test_wildcard_origin_is_the_default(client):
    response = _preflight(client, "https://anywhere.example")
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def _log_in_from(client, forwarded_for: str, remote: str = "10.0.0.1"):
    register(client, "ip@example.com")
    response = client.post(
        "/api/v1/sessions",
        json={"email": "ip@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": remote},
    )
    assert response.status_code == 201
    return response.get_json()["session"]["ip"]


def test_x_forwarded_for_is_ignored_by_default(client):
    assert _log_in_from(client, "203.0.113.9") == "10.0.0.1"


def test_x_forwarded_for_is_read_behind_a_configured_proxy(make_app):
    client = make_app(COFFER_TRUSTED_PROXIES=1).test_client()
    # Only the hop the proxy appended counts; whatever the client claimed before it does not.
    assert _log_in_from(client, "198.51.100.7, 203.0.113.9") == "203.0.113.9"


def test_a_spoofed_x_forwarded_for_does_not_dodge_the_log_in_limit(make_app):
    client = make_app(COFFER_RATE_LIMIT_AUTH="2/minute").test_client()
    statuses = [
        client.post(
            "/api/v1/sessions",
            json={"email": f"nobody{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(3)
    ]
    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.org", True),
        ("https://APP.example.org", True),
        ("https://a.b.example.org", False),  # the `*` stands for one label
        ("https://example.org", False),
        ("http://app.example.org", False),
        ("https://app.example.org.evil.test", False),
        ("https://exact.example", True),
    ],
)
def test_a_wildcard_cors_origin_matches_one_label(make_app, origin, allowed):
    app = make_app(COFFER_CORS_ORIGINS=["https://*.example.org", "https://exact.example"])
    response = _preflight(app.test_client(), origin)
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


@pytest.mark.parametrize(
    "entry", ["https://foo*.example.org", "https://*.*.example.org", "example.org", "https://a/"]
)
def test_a_cors_origin_coffer_cannot_match_is_refused_at_start_up(make_app, entry):
    with pytest.raises(RuntimeError, match="COFFER_CORS_ORIGINS"):
        make_app(COFFER_CORS_ORIGINS=[entry])
