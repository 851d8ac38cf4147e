"""HTTP plumbing shared by every resource: request ids, JSON bodies, JSON output, and the one
step that finishes every response with its CORS, rate-limit, request-id and security headers."""

import re
import uuid
from urllib.parse import unquote

import orjson
from flask import Flask, Response, current_app, g, has_request_context, request
from flask.sessions import SessionInterface
from flask_cors.core import get_cors_headers, get_cors_options, parse_resources, try_match_pattern
from marshmallow import Schema, ValidationError
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
_SPEC_PATHS = frozenset({f"{V1}/openapi.json", f"{V1}/openapi.yaml"})
_CSP = "default-src 'none'; frame-ancestors 'none'"
_PRIVATE_NETWORK = "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"


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


_NO_QUERY: dict[int, dict] = {}  # per schema: what an empty query string loads to


def load_query(schema: Schema) -> dict:
    """Validate query parameters: 400 when one is unknown or malformed, 422 when out of range."""
    if not request.args:  # the usual case: every schema's defaults, loaded once
        defaults = _NO_QUERY.get(id(schema))
        if defaults is None:
            defaults = _NO_QUERY[id(schema)] = _load_query(schema, {})
        return dict(defaults)
    return _load_query(schema, request.args.to_dict(flat=True))


def _load_query(schema: Schema, args: dict) -> dict:
    try:
        return schema.load(args)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        malformed = any(
            name not in schema.fields
            or set(problems) & set(schema.fields[name].error_messages.values())
            for name, problems in messages.items()
        )
        status = 400 if malformed else 422
        raise Problem(status, "A query parameter is invalid.", errors=messages) from None


def json_response(data: object, code: int, headers: dict | None = None) -> Response:
    """Flask-RESTful representation for application/json, serialised with orjson."""
    content = orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
    response = current_app.response_class(content, status=code, mimetype=JSON)
    if headers:
        response.headers.extend(headers)
    return response


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _assign_request_id() -> None:
    sent = request.environ.get("HTTP_X_REQUEST_ID")
    g.request_id = sent if sent and _SANE_REQUEST_ID.match(sent) else _new_request_id()
    request.environ[REQUEST_ID_ENVIRON] = g.request_id
    if len(request.path) + len(request.query_string) > MAX_URI_BYTES:
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

    def headers(self) -> list[tuple[str, str]]:
        """The CORS headers for this request's response (none outside the CORS paths)."""
        path = unquote(request.path)
        if not any(try_match_pattern(path, pattern, caseSensitive=True) for pattern in self.paths):
            return []
        environ = request.environ
        if environ["REQUEST_METHOD"] != "OPTIONS" and _PRIVATE_NETWORK not in environ:
            if not environ.get("HTTP_ORIGIN"):
                return self.without_origin
            if self.any_origin is not None:
                return self.any_origin
        found = get_cors_headers(self.options, request.headers, request.method)
        return [(name, str(value)) for name, value in found.items(multi=True)]


def _finish(response: Response) -> Response:
    """The one response-finishing step: CORS, rate-limit, request-id and security headers,
    appended in that order to what the view or error handler set."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.to_wsgi_list()}
    cors = current_app.extensions.get("coffer_cors")
    if cors is not None and "access-control-allow-origin" not in present:
        for name, value in cors.headers():
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
