"""Every response's headers, exactly: names, values and order, for each kind of request.

The security headers, the CORS headers (preflights and simple requests, with and without an
Origin, allowed or not, `*` or a list of origins), the request id and the X-RateLimit headers
come from one response-finishing step; these expectations are what the per-hook version sent,
so that step changes no response. Values that differ on every run (generated request ids,
reset times, ETags) are checked for their form and shown as <placeholders>.
"""

import math
import os
import re
import time
import uuid

import pytest
from flask import Response
from helpers import API, bearer, register_and_log_in

from api.http import web

WINDOW = 60  # seconds: every limit of these tests is per minute
ORIGINS = ["https://app.example.org", "https://*.example.net"]
EXPOSE = (
    "Allow, ETag, Idempotent-Replayed, Link, Location, Retry-After, WWW-Authenticate, "
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-ID"
)
NO_STORE = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
]
ID_GENERATED = [("X-Request-ID", "<generated>")]
LIMITS = [
    ("X-RateLimit-Limit", "10000"),
    ("X-RateLimit-Remaining", "<remaining>"),
    ("X-RateLimit-Reset", "<reset>"),
]
ANY_ORIGIN = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", EXPOSE)]
APP_ORIGIN = [
    ("Access-Control-Allow-Origin", "https://app.example.org"),
    ("Access-Control-Expose-Headers", EXPOSE),
    ("Vary", "Origin"),
]
JSON = [("Content-Type", "application/json"), ("Content-Length", "<content-length>")]
PROBLEM = [("Content-Type", "application/problem+json"), ("Content-Length", "<content-length>")]
SAME = None
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def reset_in_window(reset: str, sent_at: float, checked_at: float) -> bool:
    """X-RateLimit-Reset, Unix seconds rounded down, of a per-minute window counted between
    `sent_at` and `checked_at`: from the instant of the count (a fresh counter in Redis has
    room again at once, its key's TTL being exactly two windows) to one window later. Bound
    by the request's own times, not the clock of the check: a loaded machine may take
    seconds between the two."""
    return math.floor(sent_at) <= int(reset) <= checked_at + WINDOW


def _placeholders(headers: list[tuple[str, str]], sent_at: float) -> list[tuple[str, str]]:
    shown = []
    now = time.time()
    for name, value in headers:
        if name == "X-Request-ID" and value != "trace-7":
            assert re.fullmatch(r"[0-9a-f]{32}", value), value
            value = "<generated>"
        elif name == "X-RateLimit-Reset":
            assert reset_in_window(value, sent_at, now), (value, sent_at, now)
            value = "<reset>"
        elif name == "X-RateLimit-Remaining" and value not in ("0", "1"):
            assert 0 <= int(value) < 10000, value
            value = "<remaining>"
        elif name == "Allow":  # Flask lists a route's methods in a set's order
            value = ", ".join(sorted(value.split(", ")))
        elif name in ("ETag", "Location", "Content-Length", "Retry-After"):
            assert value, name
            value = f"<{name.lower()}>"
        shown.append((name, value))
    return shown


def _record(client, headers) -> tuple[str, str]:
    created = client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=headers)
    assert created.status_code == 201
    return created.headers["Location"], created.headers["ETag"]


def _exchange(client, user, kind: str):
    """Send one kind of request; its response."""
    token = user.headers
    origin = {"Origin": "https://app.example.org"}
    if kind == "me, no Origin":
        return client.get(f"{API}/users/me", headers=token)
    if kind == "me, allowed Origin":
        return client.get(f"{API}/users/me", headers={**token, **origin})
    if kind == "me, Origin matching a wildcard label":
        return client.get(f"{API}/users/me", headers={**token, "Origin": "https://a.example.net"})
    if kind == "me, other Origin":
        return client.get(f"{API}/users/me", headers={**token, "Origin": "https://evil.test"})
    if kind == "me, X-Request-ID sent":
        return client.get(f"{API}/users/me", headers={**token, "X-Request-ID": "trace-7"})
    if kind == "me, malformed X-Request-ID":
        return client.get(f"{API}/users/me", headers={**token, "X-Request-ID": "no spaces"})
    if kind == "me, HEAD":
        return client.head(f"{API}/users/me", headers={**token, **origin})
    if kind == "me, private network request":
        private = {"Access-Control-Request-Private-Network": "true"}
        return client.get(f"{API}/users/me", headers={**token, **origin, **private})
    if kind == "preflight":
        return client.options(
            f"{API}/users/me",
            headers={
                **origin,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "Content-Type, authorization, X-Other",
            },
        )
    if kind == "preflight, method not allowed":
        return client.options(
            f"{API}/users/me", headers={**origin, "Access-Control-Request-Method": "TRACE"}
        )
    if kind == "OPTIONS, no Origin":
        return client.options(f"{API}/users/me")
    if kind == "401, no token":
        return client.get(f"{API}/users/me", headers=origin)
    if kind == "404, unknown route":
        return client.get(f"{API}/nope", headers={**origin, "X-Request-ID": "trace-7"})
    if kind == "404, outside /api/v1 but matching /api":
        return client.get("/apinope", headers=origin)
    if kind == "405":
        return client.put(f"{API}/users/me", headers={**token, **origin})
    if kind == "400, malformed JSON":
        return client.post(
            f"{API}/data/notes",
            data=b"{",
            content_type="application/json",
            headers={**token, **origin, "X-Request-ID": "trace-7"},
        )
    if kind == "422":
        return client.post(
            f"{API}/data/notes",
            json={"data": 1},
            headers={**token, **origin, "X-Request-ID": "trace-7"},
        )
    if kind == "201, record created":
        return client.post(f"{API}/data/notes", json={"data": {"n": 1}}, headers=token)
    if kind == "304":
        location, etag = _record(client, token)
        return client.get(location, headers={**token, **origin, "If-None-Match": etag})
    if kind == "200, record":
        location, _ = _record(client, token)
        return client.get(location, headers=token)
    if kind == "414":
        return client.get(f"{API}/data/notes?x=" + "a" * 9000, headers=origin)
    if kind == "log-in refused, per-IP limit counted":
        credentials = {"email": user.email, "password": "wrong password 123"}
        return client.post(f"{API}/sessions", json=credentials, headers=origin)
    if kind == "healthz, Origin":
        return client.get("/healthz", headers=origin)
    if kind == "docs":
        return client.get("/docs", headers=origin)
    if kind == "openapi.json":
        return client.get(f"{API}/openapi.json", headers=origin)
    if kind == "jwks, Origin":
        return client.get("/.well-known/jwks.json", headers=origin)
    raise AssertionError(kind)


# Per request kind: (status, its headers when COFFER_CORS_ORIGINS is `*`, and for ORIGINS),
# as the per-hook version sent them. SAME: the list of origins changes nothing.
EXPECTED: dict[str, tuple[int, list, list]] = {
    "me, no Origin": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [*JSON, *APP_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "me, allowed Origin": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [*JSON, *APP_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "me, Origin matching a wildcard label": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [
            *JSON,
            ("Access-Control-Allow-Origin", "https://a.example.net"),
            ("Access-Control-Expose-Headers", EXPOSE),
            ("Vary", "Origin"),
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
    ),
    "me, other Origin": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [*JSON, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "me, X-Request-ID sent": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, ("X-Request-ID", "trace-7"), *NO_STORE],
        [*JSON, *APP_ORIGIN, *LIMITS, ("X-Request-ID", "trace-7"), *NO_STORE],
    ),
    "me, malformed X-Request-ID": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [*JSON, *APP_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "me, HEAD": (
        200,
        [*JSON, *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [*JSON, *APP_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "me, private network request": (
        200,
        [
            *JSON,
            *ANY_ORIGIN,
            ("Access-Control-Allow-Private-Network", "false"),
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
        [
            *JSON,
            ("Access-Control-Allow-Origin", "https://app.example.org"),
            ("Access-Control-Expose-Headers", EXPOSE),
            ("Access-Control-Allow-Private-Network", "false"),
            ("Vary", "Origin"),
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
    ),
    "preflight": (
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *ANY_ORIGIN,
            ("Access-Control-Allow-Headers", "Content-Type, authorization"),
            ("Access-Control-Max-Age", "600"),
            ("Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
            *ID_GENERATED,
            *NO_STORE,
            ("Content-Length", "<content-length>"),
        ],
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            ("Access-Control-Allow-Origin", "https://app.example.org"),
            ("Access-Control-Expose-Headers", EXPOSE),
            ("Access-Control-Allow-Headers", "Content-Type, authorization"),
            ("Access-Control-Max-Age", "600"),
            ("Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
            ("Vary", "Origin"),
            *ID_GENERATED,
            *NO_STORE,
            ("Content-Length", "<content-length>"),
        ],
    ),
    "preflight, method not allowed": (
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *ANY_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
            ("Content-Length", "<content-length>"),
        ],
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *APP_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
            ("Content-Length", "<content-length>"),
        ],
    ),
    "OPTIONS, no Origin": (
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *ANY_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
            ("Content-Length", "<content-length>"),
        ],
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *APP_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
            ("Content-Length", "<content-length>"),
        ],
    ),
    "401, no token": (
        401,
        [
            *PROBLEM,
            ("WWW-Authenticate", 'Bearer realm="coffer"'),
            *ANY_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
        ],
        [
            *PROBLEM,
            ("WWW-Authenticate", 'Bearer realm="coffer"'),
            *APP_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
        ],
    ),
    "404, unknown route": (
        404,
        [*PROBLEM, *ANY_ORIGIN, ("X-Request-ID", "trace-7"), *NO_STORE],
        [*PROBLEM, *APP_ORIGIN, ("X-Request-ID", "trace-7"), *NO_STORE],
    ),
    "404, outside /api/v1 but matching /api": (
        404,
        [
            *PROBLEM,
            *ANY_ORIGIN,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
        [
            *PROBLEM,
            *APP_ORIGIN,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
    ),
    "405": (
        405,
        [
            *PROBLEM,
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *ANY_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
        ],
        [
            *PROBLEM,
            ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH"),
            *APP_ORIGIN,
            *ID_GENERATED,
            *NO_STORE,
        ],
    ),
    "400, malformed JSON": (
        400,
        [*PROBLEM, *ANY_ORIGIN, *LIMITS, ("X-Request-ID", "trace-7"), *NO_STORE],
        [*PROBLEM, *APP_ORIGIN, *LIMITS, ("X-Request-ID", "trace-7"), *NO_STORE],
    ),
    "422": (
        422,
        [*PROBLEM, *ANY_ORIGIN, *LIMITS, ("X-Request-ID", "trace-7"), *NO_STORE],
        [*PROBLEM, *APP_ORIGIN, *LIMITS, ("X-Request-ID", "trace-7"), *NO_STORE],
    ),
    "201, record created": (
        201,
        [
            *JSON,
            ("Location", "<location>"),
            ("ETag", "<etag>"),
            *ANY_ORIGIN,
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
        [
            *JSON,
            ("Location", "<location>"),
            ("ETag", "<etag>"),
            *APP_ORIGIN,
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
    ),
    "304": (
        304,
        [("ETag", "<etag>"), *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [("ETag", "<etag>"), *APP_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "200, record": (
        200,
        [*JSON, ("ETag", "<etag>"), *ANY_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
        [*JSON, ("ETag", "<etag>"), *APP_ORIGIN, *LIMITS, *ID_GENERATED, *NO_STORE],
    ),
    "414": (
        414,
        [*PROBLEM, *ANY_ORIGIN, *ID_GENERATED, *NO_STORE],
        [*PROBLEM, *APP_ORIGIN, *ID_GENERATED, *NO_STORE],
    ),
    "log-in refused, per-IP limit counted": (
        401,
        [
            *PROBLEM,
            ("WWW-Authenticate", 'Bearer realm="coffer"'),
            *ANY_ORIGIN,
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
        [
            *PROBLEM,
            ("WWW-Authenticate", 'Bearer realm="coffer"'),
            *APP_ORIGIN,
            *LIMITS,
            *ID_GENERATED,
            *NO_STORE,
        ],
    ),
    "healthz, Origin": (
        200,
        [
            *JSON,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
        SAME,
    ),
    "docs": (
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", "<content-length>"),
            (
                "Content-Security-Policy",
                DOCS_CSP,
            ),
            ("Cache-Control", "public, max-age=300"),
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ],
        SAME,
    ),
    "openapi.json": (
        200,
        [
            *JSON,
            ("Cache-Control", "public, max-age=300"),
            *ANY_ORIGIN,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
        [
            *JSON,
            ("Cache-Control", "public, max-age=300"),
            *APP_ORIGIN,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
    ),
    "jwks, Origin": (
        200,
        [
            *JSON,
            ("Cache-Control", "public, max-age=300"),
            *ANY_ORIGIN,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
        [
            *JSON,
            ("Cache-Control", "public, max-age=300"),
            *APP_ORIGIN,
            *ID_GENERATED,
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ],
    ),
}


@pytest.fixture(params=["*", "list"])
def app(request, make_app):
    """The app of `accounts` and `user`, with every origin allowed, or ORIGINS."""
    return make_app(COFFER_CORS_ORIGINS=["*"] if request.param == "*" else ORIGINS)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_headers_of_each_kind_of_response_are_unchanged(app, client, user, kind):
    sent_at = time.time()
    response = _exchange(client, user, kind)
    status, wildcard, listed = EXPECTED[kind]
    assert response.status_code == status
    every_origin = app.config["COFFER_CORS_ORIGINS"] == ["*"]
    expected = wildcard if every_origin or listed is SAME else listed
    assert _placeholders(response.headers.to_wsgi_list(), sent_at) == expected


def test_a_refused_request_shows_the_refusing_window_and_retry_after(make_app):
    """Two requests spend the limit, a third is refused. A sliding window that a minute's
    boundary splits already lets some of the previous minute's hits go, so the three must fall
    in one minute: on a machine so slow that they straddle one, again with a fresh user."""
    client = make_app(COFFER_RATE_LIMIT_API="2/minute").test_client()
    for _ in range(3):
        token = bearer(register_and_log_in(client)["access_token"])
        started = time.time()
        statuses = [client.get(f"{API}/users/me", headers=token).status_code for _ in range(2)]
        sent_at = time.time()
        origin = {"Origin": "https://app.example.org"}
        response = client.get(f"{API}/users/me", headers={**token, **origin})
        if started // WINDOW == time.time() // WINDOW:
            break
    assert statuses == [200, 200]
    assert response.status_code == 429
    assert _placeholders(response.headers.to_wsgi_list(), sent_at) == [
        ("Content-Type", "application/problem+json"),
        ("Content-Length", "<content-length>"),
        ("Retry-After", "<retry-after>"),
        *ANY_ORIGIN,
        ("X-RateLimit-Limit", "2"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "<reset>"),
        *ID_GENERATED,
        *NO_STORE,
    ]


@pytest.mark.parametrize(
    ("reset", "sent_at", "checked_at", "in_window"),
    [
        # Counted in Redis at 100.7 (room again at once: reset 100), checked 1.5 s later.
        ("100", 100.6, 102.2, True),
        ("159", 100.6, 100.8, True),  # a whole window ahead
        ("99", 100.6, 100.8, False),  # before the request was sent
        ("162", 100.6, 100.8, False),  # more than a window after it was answered
    ],
)
def test_a_reset_is_judged_by_the_times_of_its_request(reset, sent_at, checked_at, in_window):
    assert reset_in_window(reset, sent_at, checked_at) is in_window


def test_a_generated_request_id_is_the_hex_of_a_version_4_uuid(monkeypatch):
    """The request id built from random bits is what uuid.uuid4().hex makes of the same bits."""
    for _ in range(200):
        bits = os.urandom(16)
        monkeypatch.setattr(os, "urandom", lambda n, bits=bits: bits)
        assert web._new_request_id() == uuid.UUID(bytes=bits, version=4).hex


@pytest.mark.parametrize(
    "kwargs",
    [
        {"response": b'{"a": 1}\n', "status": 200, "mimetype": "application/json"},
        {"response": b"{}", "status": 201, "headers": {"Location": "/api/v1/x/é"}},
        {"response": b"{}", "status": 201, "headers": {"Content-Location": "/a b"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "/api/v1/data/c_1/01a2-9f"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "http://h.example:8000/a/b"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "https://h.example/a.b~c"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "/a?b=c d&e"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "/a%20b"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "//h.example/a"}},
        {"response": b"{}", "status": 201, "headers": {"Location": "http://ü.example/a"}},
        {"response": b"{}", "status": 200, "headers": {"Content-Location": "/api/v1/x"}},
        {"response": b"", "status": 204, "headers": {"Content-Length": "0"}},
        {"response": b"", "status": 304, "headers": {"ETag": '"x"', "Content-Type": "a/b"}},
        {"response": iter([b"data: 1\n\n"]), "status": 200, "mimetype": "text/event-stream"},
        {"response": b"abc", "status": 200, "headers": {"Content-Length": "3", "Vary": "A"}},
        {"response": b"x", "status": 429, "headers": [("Link", "<a>"), ("Link", "<b>")]},
    ],
)
def test_the_servers_copy_of_the_headers_is_werkzeugs(kwargs):
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "localhost", "PATH_INFO": "/x"}
    ours = web.App.response_class(**kwargs).get_wsgi_headers(environ).to_wsgi_list()
    if hasattr(kwargs["response"], "__next__"):
        kwargs = {**kwargs, "response": iter([b"data: 1\n\n"])}
    assert ours == Response(**kwargs).get_wsgi_headers(environ).to_wsgi_list()
