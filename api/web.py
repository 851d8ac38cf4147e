"""HTTP plumbing shared by every resource: request ids, headers, JSON bodies, JSON output."""

import re
import uuid

import orjson
from flask import Flask, Response, current_app, g, request
from flask.sessions import SessionInterface
from marshmallow import Schema, ValidationError

from api.errors import Problem

V1 = "/api/v1"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
MAX_URI_BYTES = 8192  # gunicorn's own request-line limit is off, so that this answers in JSON
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_SPEC_PATHS = frozenset({f"{V1}/openapi.json", f"{V1}/openapi.yaml"})


def client_ip() -> str:
    """The client address; ProxyFix (configured by COFFER_TRUSTED_PROXIES) makes it the real one."""
    return request.remote_addr or "unknown"


def load_json(*, media_types: tuple[str, ...] = (JSON,)) -> object:
    """The request body parsed as JSON: 415 for another content type, 400 when malformed."""
    if request.mimetype not in media_types:
        raise Problem(415, f"The request body must be {' or '.join(media_types)}.")
    try:
        return orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"The request body is not valid JSON: {exc}.") from None


def load_body(schema: Schema, *, media_types: tuple[str, ...] = (JSON,)) -> dict:
    """Parse and validate the JSON body; a ValidationError becomes 422 in api/errors.py."""
    return schema.load(load_json(media_types=media_types))


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
    response = current_app.response_class(orjson.dumps(data), status=code, mimetype=JSON)
    if headers:
        response.headers.extend(headers)
    return response


def _assign_request_id() -> None:
    sent = request.headers.get("X-Request-ID", "")
    g.request_id = sent if _SANE_REQUEST_ID.match(sent) else uuid.uuid4().hex
    if len(request.path) + len(request.query_string) > MAX_URI_BYTES:
        raise Problem(414, f"The URL is longer than {MAX_URI_BYTES} bytes.")


def _secure_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", "no-referrer")
    path = request.path
    if path.startswith(V1) and path not in _SPEC_PATHS:
        headers["Cache-Control"] = "no-store"
    if not path.startswith("/docs"):
        headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    return response


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
    app.after_request(_secure_headers)
