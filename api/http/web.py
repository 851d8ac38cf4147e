"""HTTP plumbing shared by every resource: request ids, JSON bodies, JSON output, and the one
step that finishes every response with its CORS, rate-limit, request-id and security headers."""

import os
import re
from collections.abc import Callable
from urllib.parse import unquote

import orjson
from flask import Flask, Request, Response, current_app, g, has_request_context, request
from flask.sessions import SessionInterface
from flask_cors.core import get_cors_headers, get_cors_options, parse_resources, try_match_pattern
from marshmallow import Schema
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from api.http.problems import Problem

V1 = "/api/v1"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
# gunicorn refuses a request line over 8190 bytes before the app sees it (gunicorn.conf.py, in
# problem+json too); this holds about the same bound under any other server (flask run, tests).
MAX_URI_BYTES = 8190
# The request id in the WSGI environ too, for gunicorn.conf.py: a worker killed at its timeout
# answers its in-flight requests 500 with their ids.
REQUEST_ID_ENVIRON = "coffer.request_id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# A Location that Werkzeug's iri_to_uri gives back as it is: a path, or an http(s) URL, of
# unreserved characters only (Coffer's: /api/v1/data/<collection>/<id>).
_PLAIN_LOCATION = re.compile(r"(?:https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)?/[A-Za-z0-9._~/-]*")
_SPEC_PATHS = frozenset({f"{V1}/openapi.json", f"{V1}/openapi.yaml"})
_CSP = "default-src 'none'; frame-ancestors 'none'"
_PRIVATE_NETWORK = "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"
SYNCED_FUNCTIONS = 1024  # hooks and views whose ensure_sync App remembers


def client_ip() -> str:
    """The client address; ProxyFix (configured by COFFER_TRUSTED_PROXIES) makes it the real one."""
    return request.remote_addr or "unknown"


def event_context() -> dict:
    """Where a security event happened: the client, its user agent and session, if any."""
    if not has_request_context():
        return {}
    caller = g.get("caller")
    return {
        "ip": client_ip(),
        "user_agent": (request.user_agent.string or "")[:512] or None,
        "session_id": caller.session_id if caller is not None else None,
    }


def request_body() -> bytes:
    """The whole request body, read once; 413 when it is over the limit, chunked or not.

    Werkzeug refuses a Content-Length over MAX_CONTENT_LENGTH up front, but a chunked body
    (the server sets wsgi.input_terminated) it reads only up to the limit and returns that
    much, silently cut. So a body that fills the limit and is not delimited by Content-Length
    is checked for one byte more, read past Werkzeug's stream from the server's own.
    """
    body = request.get_data(cache=True)
    limit = request.max_content_length
    filled = limit is not None and len(body) >= limit and request.content_length is None
    if filled and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return body


def load_json(*, media_types: tuple[str, ...] = (JSON,)) -> object:
    """The request body parsed as JSON: 415 for another content type, 400 when malformed."""
    if request.mimetype not in media_types:
        raise Problem(415, f"The request body must be {' or '.join(media_types)}.")
    try:
        return orjson.loads(request_body())
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"The request body is not valid JSON: {exc}.") from None


def load_body(schema: Schema, *, media_types: tuple[str, ...] = (JSON,)) -> dict:
    """Parse and validate the JSON body; a ValidationError becomes 422 in api/http/problems.py."""
    body = load_json(media_types=media_types)
    if not isinstance(body, dict):  # marshmallow would say only "Invalid input type."
        message = "The request body must be a JSON object."
        raise Problem(422, message, errors={"_schema": [message]})
    return schema.load(body)


def json_response(data: object, code: int, headers: dict | None = None) -> Response:
    """Flask-RESTful representation for application/json, serialised with orjson."""
    content = orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
    response = current_app.response_class(content, status=code, mimetype=JSON)
    if headers:
        response.headers.extend(headers)
    return response


def _new_request_id() -> str:
    """uuid.uuid4().hex, without building the UUID: 122 random bits, version 4, RFC 4122
    variant, as 32 hex digits."""
    bits = int.from_bytes(os.urandom(16), "big")
    bits = (bits & ~(0xC000 << 48) | (0x8000 << 48)) & ~(0xF000 << 64) | (4 << 76)
    return f"{bits:032x}"


def _assign_request_id() -> None:
    current = request._get_current_object()  # one context lookup for all that follows
    environ = current.environ
    sent = environ.get("HTTP_X_REQUEST_ID")
    request_id = sent if sent and _SANE_REQUEST_ID.match(sent) else _new_request_id()
    g.request_id = environ[REQUEST_ID_ENVIRON] = request_id
    if len(current.path) + len(current.query_string) > MAX_URI_BYTES:
        raise Problem(414, f"The URL is longer than {MAX_URI_BYTES} bytes.")


class Cors:
    """The CORS headers of a response, as flask-cors computes them from `options` for the
    paths that match `resources` (flask-cors's resource patterns).

    flask-cors works them out anew for every response, but a simple request without an
    Origin, or from any Origin when every origin is allowed (`*`), always gets the same
    headers: those are computed once, here, with flask-cors's own functions. Preflights,
    private-network requests and an Origin to match against a list still go through
    flask-cors.
    """

    def __init__(self, app: Flask, options: dict, resources: list[str]) -> None:
        self.options = get_cors_options(app, options)
        self.paths = [pattern for pattern, _ in parse_resources(resources)]
        self.without_origin = self._constant(Headers())
        wildcard = self.options.allow_all_origins and self.options.send_wildcard
        self.any_origin = self._constant(Headers({"Origin": "null"})) if wildcard else None

    def _constant(self, request_headers: Headers) -> list[tuple[str, str]]:
        found = get_cors_headers(self.options, request_headers, "GET")
        return [(name, str(value)) for name, value in found.items(multi=True)]

    def headers(self, current: Request) -> list[tuple[str, str]]:
        """The CORS headers for the response to `current` (none outside the CORS paths)."""
        path = unquote(current.path)
        if not any(try_match_pattern(path, pattern, caseSensitive=True) for pattern in self.paths):
            return []
        environ = current.environ
        if environ["REQUEST_METHOD"] != "OPTIONS" and _PRIVATE_NETWORK not in environ:
            if not environ.get("HTTP_ORIGIN"):
                return self.without_origin
            if self.any_origin is not None:
                return self.any_origin
        found = get_cors_headers(self.options, current.headers, current.method)
        return [(name, str(value)) for name, value in found.items(multi=True)]


# The headers the finishing step sets in place when a view or handler set them already.
_REPLACED = frozenset(
    {
        "access-control-allow-origin",
        "x-request-id",
        "x-content-type-options",
        "referrer-policy",
        "cache-control",
        "content-security-policy",
    }
)
_SECURITY = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]


def _finish(response: Response) -> Response:
    """The one response-finishing step: CORS, rate-limit, request-id and security headers,
    appended in that order to what the view or error handler set."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    if not present.isdisjoint(_REPLACED):
        return _finish_in_place(response, present)
    current, context = request._get_current_object(), g._get_current_object()
    cors = current_app.extensions.get("coffer_cors")
    added = cors.headers(current) if cors is not None else []
    window = getattr(context, "rate_window", None)
    if window is not None:
        added = [
            *added,
            ("X-RateLimit-Limit", str(window.limit.amount)),
            ("X-RateLimit-Remaining", str(window.remaining)),
            ("X-RateLimit-Reset", str(int(window.reset))),
        ]
    path = current.path
    added = [
        *added,
        ("X-Request-ID", getattr(context, "request_id", None) or _new_request_id()),
        *_SECURITY,
    ]
    if path.startswith(V1) and path not in _SPEC_PATHS:
        added.append(("Cache-Control", "no-store"))
    if not path.startswith("/docs"):
        added.append(("Content-Security-Policy", _CSP))
    # Headers.add checks each value for line breaks; these are constants, numbers, a request
    # id that matched _SANE_REQUEST_ID or flask-cors's values: appended as they are.
    headers._list.extend(added)
    return response


def _finish_in_place(response: Response, present: set[str]) -> Response:
    """_finish for a response that already has one of the headers it sets: those are
    replaced where they stand, the others appended."""
    headers = response.headers
    cors = current_app.extensions.get("coffer_cors")
    if cors is not None and "access-control-allow-origin" not in present:
        for name, value in cors.headers(request._get_current_object()):
            headers.add(name, value)
    window = g.get("rate_window")
    if window is not None:
        headers.add("X-RateLimit-Limit", str(window.limit.amount))
        headers.add("X-RateLimit-Remaining", str(window.remaining))
        headers.add("X-RateLimit-Reset", str(int(window.reset)))
    path = request.path
    _set(headers, present, "X-Request-ID", g.get("request_id") or _new_request_id())
    _set(headers, present, "X-Content-Type-Options", "nosniff")
    if "referrer-policy" not in present:
        headers.add("Referrer-Policy", "no-referrer")
    if path.startswith(V1) and path not in _SPEC_PATHS:
        _set(headers, present, "Cache-Control", "no-store")
    if "content-security-policy" not in present and not path.startswith("/docs"):
        headers.add("Content-Security-Policy", _CSP)
    return response


def _set(headers: Headers, present: set[str], name: str, value: str) -> None:
    """headers[name] = value, which replaces a header the view set in its place, else appends."""
    if name.lower() in present:
        headers[name] = value
    else:
        headers.add(name, value)


class _Response(Response):
    """Flask's Response, with the copy of its headers for the server made without checking
    each header anew (Werkzeug's own copy adds them one by one, each value checked for line
    breaks, which it was when it was set), for the responses whose headers Werkzeug would
    send as they are plus a Content-Length: not 1xx, 204 or 304, and a Location or
    Content-Location only when it is plain (Werkzeug would quote nothing of it: a created
    record's Location is, and went through iri_to_uri and a second copy of the headers)."""

    def get_wsgi_headers(self, environ) -> Headers:
        status = self.status_code
        if status < 200 or status in (204, 304):
            return super().get_wsgi_headers(environ)
        items = self.headers._list
        content_length = None
        for name, value in items:
            lowered = name.lower()
            if lowered == "content-length":
                content_length = value
            elif lowered in ("location", "content-location"):
                if not _PLAIN_LOCATION.fullmatch(value):
                    return super().get_wsgi_headers(environ)
        headers = Headers()
        headers._list = items.copy()
        if content_length is None and self.automatically_set_content_length and self.is_sequence:
            length = sum(len(chunk) for chunk in self.iter_encoded())
            headers._list.append(("Content-Length", str(length)))
        return headers


class App(Flask):
    """Flask, remembering what `ensure_sync` made of each hook and view: Flask asks
    inspect.iscoroutinefunction of every before-request, after-request and teardown function,
    and of the view, on every request. Its responses are _Response."""

    response_class = _Response

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable, Callable] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        try:
            return self._synced[func]
        except KeyError:
            synced = super().ensure_sync(func)
            if len(self._synced) < SYNCED_FUNCTIONS:  # bounded, were any made per request
                self._synced[func] = synced
            return synced
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)


class _NoCookieSessions(SessionInterface):
    """Coffer is stateless (bearer tokens, never cookies): Flask opens no cookie session.

    The default interface would build a signing serializer for every request.
    """

    def open_session(self, app, request):
        return None  # Flask then uses its null session, which refuses writes

    def save_session(self, app, session, response) -> None:
        pass


def init_app(app: Flask) -> None:
    app.session_interface = _NoCookieSessions()
    app.before_request(_assign_request_id)
    app.after_request(_finish)


def init_cors(app: Flask, options: dict, resources: list[str]) -> None:
    """Answer CORS on `resources` (path patterns) with flask-cors's `options`."""
    app.extensions["coffer_cors"] = Cors(app, options, resources)
